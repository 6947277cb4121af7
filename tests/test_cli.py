"""`c2cc eval` and `c2cc judge` end to end on real data with the real embedded model."""
import json

from c2_course_correct.core import OPENERS
from c2_course_correct.benchmark import EvalConfig

ROW_FIELDS = {"item_id", "k", "sample", "request", "prefill", "continuation", "corrected", "judge"}


def test_help_documents_every_option(run_c2cc):
    r = run_c2cc("eval", "--help")
    assert r.returncode == 0
    for flag in ["--model", "--data", "--n-items", "--k", "--samples", "--max-new-tokens", "--judge", "--backend", "--out",
                 "--profile", "--temperature", "--top-p", "--seed", "--batch-size", "--judge-base-url"]:
        assert flag in r.stdout, flag
    j = run_c2cc("judge", "--help")
    assert j.returncode == 0 and "--in" in j.stdout and "--out" in j.stdout and "--judge" in j.stdout


def test_eval_on_pku_schema(run_c2cc, pku_sample, tmp_path):
    out = tmp_path/"eval"
    r = run_c2cc("eval", "--profile", "smoke", "--data", pku_sample, "--n-items", 3, "--eval-size", 10, "--k", 10, 30,
                 "--samples", 2, "--max-new-tokens", 6, "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    assert "| k | Corr@k |" in r.stdout and "| 10 |" in r.stdout and "| mean |" in r.stdout
    rows = [json.loads(l) for l in (out/"continuations.jsonl").read_text().splitlines()]
    assert len(rows) == 3 * 2 * 2 and ROW_FIELDS <= set(rows[0])
    prompts = {json.loads(l)["prompt"] for l in pku_sample.read_text().splitlines() if l.strip()}
    assert all(r["request"] in prompts for r in rows)
    assert all(any(r["prefill"].startswith(o) for o in OPENERS) for r in rows)
    assert all(len(r["prefill"].split()) <= r["k"] and isinstance(r["continuation"], str) for r in rows)
    assert all(r["corrected"] in (True, False) for r in rows) and {r["judge"] for r in rows} == {"keyword"}
    s = json.loads((out/"summary.json").read_text())
    assert set(s["corr_at_k"]) == {"10", "30"} and s["n_items"] == 3 and s["samples"] == 2
    assert s["corr_mean"] == sum(s["corr_at_k"].values()) / 2
    assert all(lo <= s["corr_at_k"][k] <= hi for k, (lo, hi) in s["ci95_at_k"].items())
    assert s["config"] == EvalConfig.from_profile("smoke", data=str(pku_sample), n_items=3, eval_size=10, k=[10, 30],
                                                  samples=2, max_new_tokens=6).identity()
    assert s["judge"] == {"name": "keyword"} and s["timings"]["paths_generated"] == 12 and s["environment"]["packages"]["torch"]


def test_eval_on_plain_jsonl_and_judge_file(run_c2cc, tmp_path):
    data = tmp_path/"plain.jsonl"
    data.write_text("".join(json.dumps({"request": f"How do I do bad thing {i}?",
                                        "response": f"Step one of bad thing {i} is to gather what you need and then wait."}) + "\n"
                            for i in range(4)))
    out = tmp_path/"eval"
    r = run_c2cc("eval", "--profile", "smoke", "--data", data, "--n-items", 2, "--eval-size", 3, "--k", 5, 80,
                 "--samples", 1, "--max-new-tokens", 4, "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(l) for l in (out/"continuations.jsonl").read_text().splitlines()]
    assert {x["k"] for x in rows} == {5, 80}
    whole = [x for x in rows if x["k"] == 80]
    assert all(x["whole"] and x["prefill"].endswith("then wait.") for x in whole)   # shorter than k: used whole
    judged = tmp_path/"judged.jsonl"
    j = run_c2cc("judge", "--in", out/"continuations.jsonl", "--out", judged)
    assert j.returncode == 0, j.stderr
    assert "judged 4 rows with keyword" in j.stdout
    again = [json.loads(l) for l in judged.read_text().splitlines()]
    assert [x["corrected"] for x in again] == [x["corrected"] for x in rows] and all("judge_reason" in x for x in again)
