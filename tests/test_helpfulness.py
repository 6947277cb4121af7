"""Helpfulness measures on the embedded model: `c2cc helpfulness` killed and resumed gives the same rows as an
uninterrupted run, `helpfulness-compare` pairs two runs, bad options fail with their messages, and the committed
default comparison is rebuilt from the committed runs."""
import json

import pytest

from c2_course_correct.core import read_json, read_jsonl
from c2_course_correct.helpfulness import HelpConfig, compare_helpfulness

ARGS = ["helpfulness", "--profile", "smoke", "--batch-size", "2", "--quiet"]   # 3 answers in 2 batches, those with a reference scored


@pytest.fixture(scope="module")
def whole(run_c2cc, made_once):
    out, r = made_once("helpfulness-whole", lambda out: run_c2cc(*ARGS, "--out", out))
    assert r.returncode == 0, r.stderr
    return out, r


@pytest.mark.slow
def test_a_run_answers_judges_and_scores(whole):
    out, r = whole
    s = read_json(out/"summary.json")
    cfg = HelpConfig.from_profile("smoke")
    answers, nll = read_jsonl(out/"answers.jsonl"), read_jsonl(out/"nll.jsonl")
    assert [a["request"] for a in answers] == [r.request for r in cfg.requests()] and len(answers) == 3
    assert len({(a["source"], a["category"]) for a in answers}) == 3                 # three kinds: round robin over the strata
    assert [n["item_id"] for n in nll] == [r.item_id for r in cfg.pairs()] and 1 <= len(nll) == s["nll"]["responses"] <= 3
    assert s["refusal"]["count"] == sum(bool(a["refused"]) for a in answers) and s["degenerate"]["count"] == sum(a["degenerate"] for a in answers)
    assert all(n["tokens"] == 32 and n["nll"] > 0 for n in nll)        # nll_tokens of the smoke profile
    assert f"benign requests refused: {s['refusal']['count']}/3" in r.stdout and f"NLL of {len(nll)} reference answers" in r.stdout


@pytest.mark.slow
def test_kill_and_resume_gives_the_same_rows(whole, run_c2cc, run_c2cc_killed, tmp_path):
    ref, _ = whole
    cut = tmp_path/"cut"
    run_c2cc_killed([*ARGS, "--out", cut], cut/"answers.jsonl", lines=2)
    assert not (cut/"summary.json").exists()
    r = run_c2cc(*ARGS, "--out", cut)
    assert r.returncode == 0, r.stderr
    assert read_jsonl(cut/"answers.jsonl") == read_jsonl(ref/"answers.jsonl")
    assert read_jsonl(cut/"nll.jsonl") == read_jsonl(ref/"nll.jsonl")
    drop = lambda s: {k: v for k, v in s.items() if k not in ("seconds", "environment")}
    assert drop(read_json(cut/"summary.json")) == drop(read_json(ref/"summary.json"))


@pytest.mark.slow
def test_compare_a_run_with_itself_and_refuse_other_settings(whole, run_c2cc, tmp_path):
    out, _ = whole
    r = run_c2cc("helpfulness-compare", out, out, "--out", tmp_path/"h.json")
    assert r.returncode == 0, r.stderr
    c = json.loads((tmp_path/"h.json").read_text())
    assert c["refusal"]["change"]["change"] == 0 and c["nll"]["relative_change"] == 0 and c["similarity"]["identical"] == 3
    other = tmp_path/"other"
    other.mkdir()
    s = read_json(out/"summary.json")
    (other/"summary.json").write_text(json.dumps({**s, "config": {**s["config"], "max_new_tokens": 5}}))
    for f in ("answers.jsonl", "nll.jsonl"): (other/f).write_text((out/f).read_text())
    r = run_c2cc("helpfulness-compare", out, other, "--out", tmp_path/"x.json")
    assert r.returncode == 2 and "are helpfulness runs of different settings (['max_new_tokens'])" in r.stderr, r.stderr


@pytest.mark.parametrize("args, message", [
    (["--limit", "0"], "limit must be a positive whole number or null"),
    (["--part", "train"], "invalid choice: 'train'"),
    (["--data", "missing.jsonl"], "missing.jsonl: file not found"),
    (["--test-share", "0.9"], "test_share + val_share must stay below 1"),
    (["--part", "validation", "--val-share", "0"], "the validation part is empty"),
    (["--model", "/no/such/model"], "neither an existing folder or .gguf file nor a hub id"),
])
def test_bad_options(run_c2cc, tmp_path, args, message):
    r = run_c2cc("helpfulness", "--profile", "smoke", *args, "--out", tmp_path/"out")
    assert r.returncode == 2 and message in r.stderr, r.stderr


def test_committed_helpfulness_json_comes_from_the_committed_runs(repo):
    run = repo/"outputs"/"default"
    assert json.loads((run/"helpfulness.json").read_text()) == json.loads(json.dumps(
        compare_helpfulness(run/"helpfulness-base", run/"helpfulness-trained")))
    base, trained = read_json(run/"helpfulness-base"/"summary.json"), read_json(run/"helpfulness-trained"/"summary.json")
    assert base["config"] == {**trained["config"], "model": "default"} and base["part"] == "test"
    cfg = HelpConfig.from_profile("default")
    assert base["requests"] == len(cfg.requests()) == 212 and base["nll"]["responses"] == len(cfg.pairs()) == 132
    assert len(base["refusal"]["by_source"]) == 6                               # every source of the benign pool, each with its rate
