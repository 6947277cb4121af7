"""C2-Syn: truncation on hand-made responses, the ranking invariants on real output (the committed default run
and a fresh CLI run), quality control that filters, resume after a kill, and errors on bad input."""
import json
from pathlib import Path

import pytest

from c2_course_correct.core import OPENERS, read_json, read_jsonl
from c2_course_correct.data import load_pairs, request_key, split_pairs
from c2_course_correct.synthesis import (RANK_NAMES, SynthConfig, cut_marks, plan_request, run_c2_syn, select_requests,
                                         truncation_points)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RUN = REPO/"outputs"/"default"/"synth"
SMALL = ["synth", "--profile", "smoke", "--data", "default", "--model", "default", "--quiet"]


# ---- truncation -------------------------------------------------------------------------------------------

def last_words(text, ends): return [text[:e].split()[-1] for e in ends]


def test_too_few_marks_gives_no_cuts():
    assert truncation_points("Sure. Take the key, open the door and walk in", seed=0) is None   # 2 points
    assert truncation_points("no punctuation at all in this answer", seed=0) is None
    assert truncation_points("One, two, three, four.", seed=0) is None   # the final full stop is not a cut point


def test_many_marks_give_four_spaced_cuts():
    text = " ".join(f"Step {i}: do thing {i}." for i in range(1, 21)) + " Done"   # 40 cut points
    assert len(cut_marks(text)) == 40
    steps = set()
    for seed in range(30):
        cuts = truncation_points(text, seed)
        assert cuts == truncation_points(text, seed)                            # seeded
        words = [len(text[:c].split()) for c in cuts]
        assert words == sorted(set(words)) and words[-1] < len(text.split())    # strictly later, never the whole
        assert all(text[c - 1] in ".:" for c in cuts)
        marks = cut_marks(text)
        step = marks.index(cuts[0]) + 1
        assert [marks.index(c) + 1 for c in cuts] == [step, 2 * step, 3 * step, 4 * step]
        steps.add(step)
    assert steps == {9, 10}                                                     # t_k drawn from t//4 - 1 .. t//4


def test_ellipses_are_one_cut_point():
    text = "Well... first you wait... then you go.... Later, you run... and hide... done"
    assert last_words(text, cut_marks(text)) == ["Well...", "wait...", "go....", "Later,", "run...", "hide..."]
    for c in truncation_points(text, seed=3):
        assert not (c < len(text) and text[c] == ".")                           # never inside a run of dots


def test_quotes_and_brackets():
    text = 'He said "run" and (quietly) "hide", then "fight back." Then go "now" - fast. Well-known 3.5 tricks: none'
    assert last_words(text, cut_marks(text)) == ['"run"', "(quietly)", '"hide",', 'back."', '"now"', "fast.", "tricks:"]
    assert last_words(text, truncation_points(text, seed=0)) == ['"run"', "(quietly)", '"hide",', 'back."']   # t_k = 7 // 4


def test_plan_is_seeded_per_request():
    pair = load_pairs()[0]
    assert plan_request(pair, 0) == plan_request(pair, 0)
    assert plan_request(pair, 0)["opener"] in OPENERS


# ---- the ranking invariants on real output ----------------------------------------------------------------

def held_out_requests(cfg: SynthConfig) -> set:
    test, val, _ = split_pairs(load_pairs(cfg.eval_data, cfg.eval_split), cfg.eval_size, cfg.eval_seed, cfg.eval_val_size)
    return {request_key(p.request) for p in test + val}


def check_run(out: Path, cfg: SynthConfig) -> tuple[list, list]:
    "Assert the ranking invariants and file consistency of a finished C2-Syn run; return (responses, pairs)."
    kept, pairs, stats = read_jsonl(out/"responses.jsonl"), read_jsonl(out/"pairs.jsonl"), json.loads((out/"stats.json").read_text())
    assert kept and len(pairs) == 15 * len(kept) == stats["pairs"]
    by_request = {}
    for p in pairs:
        assert set(p) >= {"prompt", "chosen", "rejected", "request_id", "chosen_rank", "rejected_rank", "chosen_cut", "rejected_cut"}
        assert p["prompt"][0]["role"] == "user" and p["chosen"][0]["role"] == p["rejected"][0]["role"] == "assistant"
        assert p["chosen_rank"] < p["rejected_rank"]                            # the better-ranked answer is chosen
        assert p["chosen_cut"] < p["rejected_cut"]                              # ... and it turns back earlier
        assert p["chosen_rank"] != 5 and p["rejected_rank"] != 0                # FHR never chosen, SR never rejected
        assert p["chosen"] != p["rejected"]
        by_request.setdefault(p["request_id"], []).append((p["chosen_rank"], p["rejected_rank"]))
    assert all(sorted(v) == [(a, b) for a in range(6) for b in range(a + 1, 6)] for v in by_request.values())
    held = held_out_requests(cfg)
    assert not {request_key(p["prompt"][0]["content"]) for p in pairs} & held   # no C2-Eval prompt
    for r in kept:
        rs = r["responses"]
        assert [x["name"] for x in rs] == RANK_NAMES
        assert [x["cut_words"] for x in rs] == sorted(set(x["cut_words"] for x in rs))
        fhr = rs[5]
        for x in rs[1:5]:
            assert x["text"].startswith(r["opener"] + " ") and x["tail"] and x["text"].endswith(x["tail"])
            harmful = x["prefix"][len(r["opener"]) + 1:]
            assert fhr["prefix"].startswith(harmful) and len(harmful.split()) == x["cut_words"]
        assert fhr["text"] == r["opener"] + " " + fhr["prefix"]                 # the FHR carries the same opener
    return kept, pairs


@pytest.mark.skipif(not (DEFAULT_RUN/"pairs.jsonl").exists(), reason="the default C2-Syn run is not committed")
def test_committed_default_run_keeps_the_ranking():
    cfg = SynthConfig.from_profile("default")
    kept, pairs = check_run(DEFAULT_RUN, cfg)
    stats = json.loads((DEFAULT_RUN/"stats.json").read_text())
    assert stats["config"] == cfg.identity()
    train = [p for p in split_pairs(load_pairs(), cfg.eval_size, cfg.eval_seed, cfg.eval_val_size)[2] if len(p.response.split()) > 80]
    assert stats["requests_selected"] == len({request_key(p.request) for p in train})   # every qualifying training request
    assert stats["requests_kept"] + stats["drops"].get("too_few_marks", 0) == stats["requests_selected"]
    assert len(kept) >= 150


ONE_PER_CHUNK = [*SMALL, "--n-requests", "4", "--batch-size", "5"]   # five responses a request: one request per chunk


@pytest.fixture(scope="module")
def four_requests(run_c2cc, made_once):
    "An uninterrupted run of four requests, one per chunk: the CLI's output and what a resumed run must give."
    return made_once("synth-four-requests", lambda out: run_c2cc(*ONE_PER_CHUNK, "--out", out))


@pytest.mark.slow
def test_cli_run_writes_pairs_for_the_training_split(four_requests):
    out, r = four_requests
    assert r.returncode == 0, r.stderr
    assert "4 of 4 requests kept, 60 pairs" in r.stdout, r.stdout
    kept, pairs = check_run(out, SynthConfig.from_profile("smoke", n_requests=4))
    from datasets import load_from_disk
    ds = load_from_disk(str(out/"dataset"))
    assert len(ds) == len(pairs) and ds[0]["chosen"] == pairs[0]["chosen"]
    card = (out/"README.md").read_text()
    for section in ("## Counts", "## Requests left out, by reason", "## Cut positions", "## Triggers used", "## Openers",
                    "## Quality control", "## Throughput", "projected hours for 50K requests"):
        assert section in card
    assert all(x["qc_passed"] in (True, False) for r in kept for x in r["responses"][:5])   # audit: judged, kept


@pytest.mark.slow
def test_pku_file_in_the_hub_schema(run_c2cc, pku_sample, tmp_path):
    # the file's own held-out split is left out (60 requests: the profile's 50 + 30 would leave none)
    r = run_c2cc(*SMALL, "--data", pku_sample, "--n-requests", "2", "--eval-size", "20", "--eval-val-size", "0",
                 "--out", tmp_path/"pku")
    assert r.returncode == 0, r.stderr
    kept, _ = check_run(tmp_path/"pku", SynthConfig.from_profile("smoke", data=str(pku_sample), n_requests=2, eval_size=20,
                                                                   eval_val_size=0))
    assert all(r["source"].startswith(str(pku_sample)) for r in kept)


# ---- quality control that filters ------------------------------------------------------------------------

@pytest.mark.slow
def test_filter_regenerates_then_drops_with_reasons(tmp_path):
    cfg = SynthConfig.from_profile("smoke", n_requests=4, qc="filter", qc_retries=1)
    stats = run_c2_syn(cfg, tmp_path/"f", progress=False)
    rows = read_jsonl(tmp_path/"f"/"work"/"requests-0-of-1.jsonl")
    assert len(rows) == 4 and stats["requests_kept"] == sum(r["kept"] for r in rows)
    for r in rows:
        if r["kept"]: assert all(x["qc_passed"] and x["attempts"] <= 2 for x in r["responses"][:5])
        else:
            assert r["drop_reason"] in {"sr_not_refusal", "syn_not_corrected", "tail_too_short", "judge_undecided", "too_few_marks"}
            assert r["detail"].split(":")[0] in RANK_NAMES or r["drop_reason"] == "too_few_marks"
    dropped = [r for r in rows if not r["kept"]]
    # work/ holds the rows as their chunks finished (chunks of similar length); drops.jsonl in plan order
    by_id = lambda rs: sorted(rs, key=lambda r: r["request_id"])
    assert by_id(read_jsonl(tmp_path/"f"/"drops.jsonl")) == by_id(dropped)
    assert sum(stats["drops"].get(k, 0) for k in {r["drop_reason"] for r in dropped}) >= len(dropped)
    # every response of a request dropped by quality control was tried twice before the drop
    timing = read_jsonl(tmp_path/"f"/"work"/"timings-0-of-1.jsonl")
    qc_dropped = [r for r in dropped if r["drop_reason"] != "too_few_marks"]
    assert sum(t["sequences"] for t in timing) >= 5 * (4 - len(dropped) + len(qc_dropped)) + len(qc_dropped)


# ---- resume ----------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_kill_and_resume_gives_the_same_pairs(run_c2cc, run_c2cc_killed, tmp_path, four_requests):
    args, (whole, done) = ONE_PER_CHUNK, four_requests
    assert done.returncode == 0, done.stderr

    killed = tmp_path/"killed"
    f = killed/"work"/"requests-0-of-1.jsonl"
    run_c2cc_killed([*args, "--out", killed], watch=f, lines=2)                # killed once two requests are on disk
    partial = read_jsonl(f)
    assert 2 <= len(partial) < 4 and not (killed/"pairs.jsonl").exists()

    r = run_c2cc(*args, "--out", killed)
    assert r.returncode == 0, r.stderr
    after = read_jsonl(f)
    assert len(after) == 4 and len({x["request_id"] for x in after}) == 4      # nothing lost, nothing twice
    assert after[:len(partial)] == partial
    assert read_jsonl(killed/"pairs.jsonl") == read_jsonl(whole/"pairs.jsonl")
    assert read_jsonl(killed/"responses.jsonl") == read_jsonl(whole/"responses.jsonl")


@pytest.mark.slow
def test_shards_share_one_folder(run_c2cc, tmp_path):
    out, args = tmp_path/"sharded", [*SMALL, "--n-requests", "3"]
    first = run_c2cc(*args, "--shard", "0/2", "--out", out)
    assert first.returncode == 0 and "shard 0/2 done" in first.stdout and not (out/"pairs.jsonl").exists()
    second = run_c2cc(*args, "--shard", "1/2", "--out", out)
    assert second.returncode == 0 and "3 of 3 requests kept, 45 pairs" in second.stdout, second.stdout + second.stderr
    assert len(read_jsonl(out/"work"/"requests-0-of-2.jsonl")) == 2 and len(read_jsonl(out/"work"/"requests-1-of-2.jsonl")) == 1


# ---- bad input -------------------------------------------------------------------------------------------

def error_of(result) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    return result.stderr.strip().splitlines()[-1]


def test_bad_numbers_and_shards(run_c2cc, tmp_path):
    assert "n_requests must be a positive whole number" in error_of(run_c2cc(*SMALL, "--n-requests", "0", "--out", tmp_path/"a"))
    assert "shard must be i/n with 0 <= i < n, got 3/2" in error_of(run_c2cc(*SMALL, "--shard", "3/2", "--out", tmp_path/"b"))
    assert "--shard must look like i/n" in error_of(run_c2cc(*SMALL, "--shard", "half", "--out", tmp_path/"c"))
    assert "qc_retries must be a whole number >= 0" in error_of(run_c2cc(*SMALL, "--qc-retries", "-1", "--out", tmp_path/"d"))
    assert "invalid choice: 'maybe'" in error_of(run_c2cc(*SMALL, "--qc", "maybe", "--out", tmp_path/"e"))


def test_data_without_a_qualifying_request(run_c2cc, tmp_path):
    short = tmp_path/"short.jsonl"
    short.write_text("".join(json.dumps(dict(request=f"How do I do bad thing {i}?", response="Here is how: do it. " * 5)) + "\n"
                             for i in range(5)))
    msg = error_of(run_c2cc(*SMALL, "--data", short, "--eval-size", "1", "--eval-val-size", "0", "--out", tmp_path/"o"))
    assert "no request qualifies for C2-Syn" in msg and "more than 80 words" in msg
    assert "'in_c2_eval_test': 1" in msg and "response_too_short': 4" in msg, msg   # the file's own test request, left out


@pytest.mark.slow
def test_folder_of_another_config_and_foreign_rows(run_c2cc, tmp_path):
    out = tmp_path/"o"
    assert run_c2cc(*SMALL, "--n-requests", "1", "--out", out).returncode == 0
    msg = error_of(run_c2cc(*SMALL, "--n-requests", "1", "--max-new-tokens", "9", "--out", out))
    assert "holds a C2-Syn run with another config (differs in ['max_new_tokens'])" in msg
    with open(out/"work"/"requests-0-of-1.jsonl", "a") as f: f.write(json.dumps(dict(request_id="feedface", kept=False)) + "\n")
    msg = error_of(run_c2cc(*SMALL, "--n-requests", "1", "--out", out))
    assert "requests-0-of-1.jsonl" in msg and "line 2" in msg and "'feedface' is not one of this config's requests" in msg


def test_bad_profiles(run_c2cc, tmp_path):
    typo = tmp_path/"typo.yaml"
    typo.write_text("synth:\n  n_request: 3\n")
    assert "unknown C2-Syn setting(s) ['n_request']" in error_of(run_c2cc("synth", "--profile", typo, "--out", tmp_path/"a"))
    none = tmp_path/"none.yaml"
    none.write_text("eval:\n  n_items: 3\n")
    assert "has no 'synth' section" in error_of(run_c2cc("synth", "--profile", none, "--out", tmp_path/"b"))


def test_selection_never_uses_held_out_or_repeated_requests():
    cfg = SynthConfig.from_profile("default")
    kept, left_out = select_requests(cfg)
    assert not {request_key(p.request) for p in kept} & held_out_requests(cfg)
    assert len({request_key(p.request) for p in kept}) == len(kept)
    assert left_out["in_c2_eval_test"] >= cfg.eval_size and left_out["in_c2_eval_validation"] >= cfg.eval_val_size
    assert all(len(p.response.split()) > 80 for p in kept)


@pytest.mark.slow
def test_synth_on_a_file_leaves_out_what_c2_eval_tests_on_that_file(pku_sample, run_c2cc, tmp_path):
    """The README's two commands on the PKU-schema file: none of C2-Syn's requests is one C2-Eval tests on (before, the
    held-out split was the profile's PyRIT one, and 2 of 5 requests were C2-Eval test requests of the file)."""
    r = run_c2cc("synth", "--profile", "smoke", "--data", pku_sample, "--eval-size", 40, "--eval-val-size", 0,
                 "--n-requests", 2, "--out", tmp_path/"s", "--quiet")
    assert r.returncode == 0, r.stderr
    cfg = read_json(tmp_path/"s"/"config.json")
    assert cfg["eval_data"] == str(pku_sample) and (cfg["eval_size"], cfg["eval_val_size"], cfg["eval_seed"]) == (40, 0, 0)
    synthesized = {request_key(x["request"]) for x in read_jsonl(tmp_path/"s"/"responses.jsonl")}
    tested = {request_key(p.request) for p in split_pairs(load_pairs(str(pku_sample)), 40, 0, 0)[0]}   # c2cc eval --eval-size 40
    assert len(synthesized) == 2 and not synthesized & tested
    # the profile's own 50 + 30 held out of this 60-request file leave no request to synthesize from: said so
    r = run_c2cc("synth", "--profile", "smoke", "--data", pku_sample, "--out", tmp_path/"t", "--quiet")
    assert r.returncode == 2 and "no request qualifies for C2-Syn" in r.stderr and "in_c2_eval_test" in r.stderr, r.stderr
