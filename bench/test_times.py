"""Where the test suite's time goes: each test's wall time from a pytest JUnit XML file, grouped by what the test
spends it on (vLLM start-up, papermill, training, generation, notebooks, process starts, in-process checks).

The groups come from the test's file and name (rules below, first match wins), not from its time, so one script
classifies every run alike and a before/after pair compares like with like. A test's time is pytest's total
(set-up, call and tear-down): a session fixture's cost falls on the first test that asks for it.
    make test PYTEST_ADDOPTS=--junitxml=/tmp/tests.xml && python bench/test_times.py /tmp/tests.xml
    python bench/test_times.py before.xml after.xml   # the two side by side
Prints a Markdown table of the groups (tests, test-seconds, share) and the slowest tests of the last file."""
import argparse, re, sys
import xml.etree.ElementTree as ET
from collections import defaultdict

TRAIN_NBS = {"30_dpo", "31_sft", "35_sweep"}
GENERATE_NBS = {"03_generate", "04_judge", "10_benchmark", "20_synthesis", "29_utility", "39_attacks", "40_safety",
                "45_helpfulness"}
PAPERMILL_NBS = {"60_reproduce"}
# group -> {test file pattern: test name pattern}; the first group (in this order) with a file and name that match
RULES = [
    ("process start only", {"test_vllm": "test_missing_vllm"}),
    ("in-process", {"test_vllm": "test_bad_vllm"}),
    ("vLLM", {"test_vllm(_serve)?": ""}),
    ("papermill", {"test_reproduce": "test_smoke_reproduce|test_a_failing"}),
    ("training", {
        "test_arena": "test_a_smoke_arena", "test_distributed": "",
        "test_dpo": "test_train_|test_training_|test_c2_eval_loads|test_full_fine|test_a_merged|test_resume_"
                    "|test_a_shared_prefix|test_nll_weight|test_self_answered",
        "test_recovery": "test_smoke_training|test_backtrack_adapter|test_c2_eval_counts|test_backtracking_"
                         "|test_a_recovery_method_that|test_an_untrained"}),
    ("generation", {
        "test_generate|test_resume|test_default_run": "", "test_safety": "resumes|shards|recipe|gcg_scoring",
        "test_helpfulness": "test_a_run|test_kill", "test_prefilling": "test_prefilling_attack",
        "test_synthesis": "test_cli_run|test_filter|test_kill|test_shards|test_folder_of|four_requests",
        "test_cli": "test_eval_on", "test_models": "chatml|adapter_is_merged|frozen_head"}),
    # a `c2cc` (or script) started for its error message or help
    ("process start only", {"test_(bad_input|bench|cli|dpo|recovery|reproduce|safety|helpfulness|synthesis|arena)":
                            "bad|refuse|missing|needs|no_rows|another_config|help|misspelt|cannot_be_written"}),
]


def group(file: str, name: str) -> str:
    "The group of test `name` of test file `file` (module name, e.g. `test_dpo`)."
    if file == "test_notebooks":
        nb = re.search(r"\[(.+)\]", name).group(1)
        return ("notebooks that train" if nb in TRAIN_NBS else "notebooks that generate" if nb in GENERATE_NBS else
                "papermill" if nb in PAPERMILL_NBS else "notebooks without a model")
    for g, rules in RULES:   # the function's name, not its parameters
        if any(re.fullmatch(f, file) and re.search(p, name.split("[")[0]) for f, p in rules.items()): return g
    return "in-process"


def read_times(path: str) -> dict[str, tuple[str, float]]:
    "`file::name` -> (group, seconds) of every test in JUnit XML `path`; a file with no test case is an error."
    cases = {}
    for tc in ET.parse(path).getroot().iter("testcase"):
        file = tc.get("classname").split(".")[-1]
        cases[f"{file}::{tc.get('name')}"] = (group(file, tc.get("name")), float(tc.get("time") or 0))
    if not cases: sys.exit(f"{path} holds no test case: is it pytest's --junitxml output?")
    return cases


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("junit", nargs="+", help="pytest --junitxml files (one column each)")
    ap.add_argument("--top", type=int, default=20, help="slowest tests of the last file to list (default 20)")
    args = ap.parse_args(argv)
    runs = [read_times(p) for p in args.junit]
    groups = sorted({g for r in runs for g, _ in r.values()})
    sums = [defaultdict(float) for _ in runs]
    counts = [defaultdict(int) for _ in runs]
    for r, s, c in zip(runs, sums, counts):
        for g, t in r.values(): s[g] += t; c[g] += 1
    print("| group | " + " | ".join(f"{p} tests | test-seconds | share" for p in args.junit) + " |")
    print("|---|" + "---|---|---|" * len(runs))
    for g in sorted(groups, key=lambda g: -sums[0][g]):
        print(f"| {g} | " + " | ".join(f"{c[g]} | {s[g]:.0f} | {s[g] / sum(s.values()):.0%}"
                                      for s, c in zip(sums, counts)) + " |")
    print("| all | " + " | ".join(f"{len(r)} | {sum(s.values()):.0f} | 100%" for r, s in zip(runs, sums)) + " |")
    print(f"\nslowest {args.top} of {args.junit[-1]}:")
    for name, (g, t) in sorted(runs[-1].items(), key=lambda kv: -kv[1][1])[:args.top]:
        print(f"  {t:6.1f} s  {name}  ({g})")


if __name__ == "__main__":
    main()
