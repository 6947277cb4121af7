"""The benchmark scripts: each documents its options, and the paper-scale cost model prices every stage."""
import re, sys

import pytest

SCRIPTS = ["c2eval_throughput.py", "c2syn_throughput.py", "dpo_throughput.py", "cost_model.py", "gpu_check.py", "stage_profile.py",
           "safety_batches.py", "safety_stage.py", "test_times.py", "retain_arena.py", "circuit_breaker_probe.py",
           "retain_search.py", "harness_parity.py"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_help(repo, script, run_command):
    r = run_command([sys.executable, repo/"bench"/script, "--help"], timeout=120)
    assert r.returncode == 0 and "usage:" in r.stdout, r.stderr


@pytest.mark.slow
def test_cost_model_prices_the_paper_scale(repo, run_command):
    r = run_command([sys.executable, repo/"bench"/"cost_model.py"], repo, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = [line for line in r.stdout.splitlines() if line.startswith("| ") and not line.startswith("| stage")]
    names = [line.split(" | ")[0].lstrip("| ") for line in rows]
    assert sum(n.startswith("eval-") for n in names) == 10                      # the paper's ten models
    assert "synth" in names and "train" in names and "train (Qwen/Qwen2-7B-Instruct)" in names
    assert sum(n.startswith("eval after training") for n in names) == 2
    total = float(re.search(r"total GPU-hours on one H100 of the table's stages \(.*\) = ([\d.]+)$", r.stdout.strip()).group(1))
    hours = [float(line.rsplit("|", 2)[1]) for line in rows if re.search(r"\| [\d.]+ \|$", line)]
    assert total == pytest.approx(sum(hours), abs=0.1 * len(hours)) and total > 10
    one, eight = (float(re.search(rf"{n}: ([\d.]+) h wall", r.stdout).group(1)) for n in ("1 GPU", "8 GPUs"))
    assert eight <= 12 < one, (one, eight)        # the whole paper run within 12 hours on 8 GPUs
    slower = run_command([sys.executable, repo/"bench"/"cost_model.py", "--mfu-train", "0.2"], repo, timeout=120)
    assert float(slower.stdout.strip().rsplit("= ", 1)[1]) > total                # half the training MFU costs more


def test_test_times_groups_a_real_run(repo, run_command, tmp_path):
    "pytest's JUnit file of two test files, grouped: every test counted once, in the group its rules name."
    xml = tmp_path/"t.xml"
    r = run_command([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", f"--junitxml={xml}",
                     "tests/test_keyword_judge.py", "tests/test_data.py::test_split_is_disjoint_deterministic_and_seeded"], repo, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:]
    r = run_command([sys.executable, repo/"bench"/"test_times.py", xml, "--top", "3"], repo, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[1] for line in r.stdout.splitlines() if line.startswith("| ") and "---" not in line}
    n = int(rows["all"])
    assert n >= 28 and rows == {"group": rows["group"], "in-process": str(n), "all": str(n)}, r.stdout
    assert "slowest 3 of" in r.stdout and len([l for l in r.stdout.splitlines() if l.startswith("  ")]) == 3
    bad = tmp_path/"empty.xml"
    bad.write_text("<testsuites><testsuite/></testsuites>")
    r = run_command([sys.executable, repo/"bench"/"test_times.py", bad], repo, timeout=120)
    assert r.returncode == 1 and "holds no test case" in r.stderr, r.stderr
