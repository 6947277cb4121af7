"""A C2-Eval run killed partway and rerun ends with the same rows and summary as an uninterrupted run."""
import json
from pathlib import Path

import pytest

ARGS = ["eval", "--profile", "smoke", "--n-items", "4", "--k", "10", "20", "30", "--samples", "2",
        "--max-new-tokens", "8", "--batch-size", "4", "--quiet"]
VOLATILE = {"timings", "environment"}


def rows(out):
    return [json.loads(l) for l in (out/"continuations.jsonl").read_text().splitlines() if l.strip()]


def stable(summary_path):
    s = json.loads(Path(summary_path).read_text())
    return {k: v for k, v in s.items() if k not in VOLATILE}


@pytest.mark.slow
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


@pytest.mark.slow
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


def started_elsewhere(out: Path, dtype: str) -> None:
    "Make `out`'s config.json say its rows were computed in `dtype`, as a run started on another machine leaves it."
    cfg = json.loads((out/"config.json").read_text())
    (out/"config.json").write_text(json.dumps({**cfg, "rows_dtype": dtype}))


@pytest.mark.slow
def test_an_auto_run_resumed_elsewhere_keeps_its_dtype_and_another_is_refused(run_c2cc, run_c2cc_killed, tmp_path):
    """`--dtype auto` is decided per machine (bf16 where the CPU multiplies it fast): a C2-Eval run killed on one
    machine and resumed on another that would choose otherwise goes on in the dtype its rows were computed in. With no
    dtype (bf16 on a GPU, fp32 on a CPU), a run started on a GPU and resumed on this CPU is refused, naming both."""
    auto = tmp_path/"auto"
    run_c2cc_killed([*ARGS, "--dtype", "auto", "--out", auto], watch=auto/"continuations.jsonl", lines=8)
    mine = json.loads((auto/"config.json").read_text())["rows_dtype"]
    theirs = {"float32": "bfloat16", "bfloat16": "float32"}[mine]
    started_elsewhere(auto, theirs)
    r = run_c2cc(*ARGS, "--dtype", "auto", "--out", auto)
    assert r.returncode == 0, r.stderr
    assert len(rows(auto)) == 24 and json.loads((auto/"summary.json").read_text())["dtype"] == theirs
    assert json.loads((auto/"config.json").read_text())["rows_dtype"] == theirs

    plain = tmp_path/"plain"
    run_c2cc_killed([*ARGS, "--out", plain], watch=plain/"continuations.jsonl", lines=8)
    partial = rows(plain)
    assert json.loads((plain/"config.json").read_text())["rows_dtype"] == "float32"   # no dtype on a CPU
    started_elsewhere(plain, "bfloat16")                                                # as on a GPU
    r = run_c2cc(*ARGS, "--out", plain)
    assert r.returncode == 2 and "holds C2-Eval rows computed in bfloat16; this process computes in float32" in r.stderr, r.stderr
    assert rows(plain) == partial and not (plain/"summary.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["helpfulness", "synth"])
def test_every_row_writing_stage_records_its_dtype_and_keeps_to_it(tmp_path, stage):
    """Helpfulness and C2-Syn on the smoke profile record the dtype they computed in; with a row lost and the rows
    written on a GPU (bf16), this CPU (fp32) does not finish them."""
    from c2_course_correct.core import ConfigError
    from c2_course_correct.helpfulness import HelpConfig, run_helpfulness
    from c2_course_correct.synthesis import SynthConfig, run_c2_syn
    config, run, rows_file = dict(helpfulness=(HelpConfig, run_helpfulness, "answers.jsonl"),
                                  synth=(SynthConfig, run_c2_syn, "work/requests-0-of-1.jsonl"))[stage]
    cfg = config.from_profile("smoke")
    run(cfg, tmp_path, progress=False)
    assert json.loads((tmp_path/"config.json").read_text())["rows_dtype"] == "float32"
    lines = (tmp_path/rows_file).read_text().splitlines(keepends=True)
    (tmp_path/rows_file).write_text("".join(lines[:-1]))   # a run killed before its last row
    for f in ("summary.json", "stats.json"): (tmp_path/f).unlink(missing_ok=True)
    started_elsewhere(tmp_path, "bfloat16")
    with pytest.raises(ConfigError, match="rows computed in bfloat16; this process computes in float32"):
        run(cfg, tmp_path, progress=False)
