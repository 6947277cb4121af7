"""A C2-Eval run killed partway and rerun ends with the same rows and summary as an uninterrupted run."""
import json
from pathlib import Path

ARGS = ["eval", "--profile", "smoke", "--n-items", "4", "--k", "10", "20", "30", "--samples", "2",
        "--max-new-tokens", "8", "--batch-size", "4", "--quiet"]
VOLATILE = {"timings", "environment"}


def rows(out):
    return [json.loads(l) for l in (out/"continuations.jsonl").read_text().splitlines() if l.strip()]


def stable(summary_path):
    s = json.loads(Path(summary_path).read_text())
    return {k: v for k, v in s.items() if k not in VOLATILE}


def test_kill_and_resume_matches_uninterrupted_run(run_c2cc, run_c2cc_killed, tmp_path):
    whole = tmp_path/"whole"
    r = run_c2cc(*ARGS, "--out", whole)
    assert r.returncode == 0, r.stderr

    killed = tmp_path/"killed"
    run_c2cc_killed([*ARGS, "--out", killed], watch=killed/"continuations.jsonl", lines=8)   # two batches on disk
    partial = rows(killed)
    assert 8 <= len(partial) < 24 and not (killed/"summary.json").exists()

    resumed = run_c2cc(*ARGS, "--out", killed)
    assert resumed.returncode == 0, resumed.stderr
    after = rows(killed)
    key = lambda r: (r["item_id"], r["k"], r["sample"])
    assert len(after) == 24 and len({key(r) for r in after}) == 24            # nothing lost, nothing twice
    assert after[:len(partial)] == partial                                     # finished rows kept as they were
    assert sorted(after, key=key) == sorted(rows(whole), key=key)              # the same continuations and verdicts
    assert stable(killed/"summary.json") == stable(whole/"summary.json")
    assert json.loads((killed/"summary.json").read_text())["timings"]["paths_generated"] == 24 - len(partial)


def test_torn_last_line_is_repaired(run_c2cc, tmp_path):
    out = tmp_path/"out"
    small = [*ARGS[:3], "--n-items", "2", "--k", "10", "--samples", "1", "--max-new-tokens", "4", "--quiet"]
    assert run_c2cc(*small, "--out", out).returncode == 0
    complete = rows(out)
    text = (out/"continuations.jsonl").read_text().splitlines(keepends=True)
    (out/"continuations.jsonl").write_text("".join(text[:-1]) + text[-1][:25])   # a writer killed mid-line
    r = run_c2cc(*small, "--out", out)
    assert r.returncode == 0, r.stderr
    assert rows(out) == complete and "dropped a torn last line" in r.stderr
