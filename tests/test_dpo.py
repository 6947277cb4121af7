"""DPO: `c2cc train` on real C2-Syn pairs with the embedded model, the trained adapter loaded by `load_model` and
by `c2cc eval --model`, weights that changed where LoRA was put, resume after a kill, bad config and bad pairs with
their messages, and the committed default before/after results."""
import json, re
from pathlib import Path

import pytest
import torch
from conftest import changed_weights

from c2_course_correct.core import read_json, read_jsonl
from c2_course_correct.dpo import write_comparison
from c2_course_correct.stats import compare_runs
from c2_course_correct.train import trained_model_path
from c2_course_correct.models import load_model, resolve_model

REPO = Path(__file__).resolve().parents[1]
PAIRS = REPO/"outputs"/"default"/"synth"
DEFAULT = REPO/"outputs"/"default"
N_PAIRS = 150   # `pairs` (conftest.py): the first 10 requests' pairs of the committed default C2-Syn run


def small(pairs) -> list:
    "The smoke profile's train section (LoRA r=8 on q_proj and v_proj, batch 2, max_length 128) on real pairs."
    return ["train", "--profile", "smoke", "--pairs", pairs, "--quiet"]


TRAINED = ["--n-pairs", 8, "--max-steps", 2, "--merge"]   # the adapter, and (--merge) the adapter merged into the base


@pytest.fixture(scope="module")
def trained_run(run_c2cc, made_once, pairs):
    out, r = made_once("dpo-train", lambda out: run_c2cc(*small(pairs), *TRAINED, "--out", out))
    assert r.returncode == 0, r.stderr
    return out, r


@pytest.mark.slow
def test_train_writes_adapter_card_curves_and_stats(trained_run):
    out, r = trained_run
    assert f"trained model: {out/'merged'}" in r.stdout and "2 steps" in r.stdout
    cfg = json.loads((out/"adapter"/"adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == "default" and cfg["r"] == 8 and set(cfg["target_modules"]) == {"q_proj", "v_proj"}
    card = (out/"adapter"/"README.md").read_text()
    assert "base model: `default`" in card and f"6 of {N_PAIRS} pairs used" in card and "LoRA r=8" in card
    assert "utility pairs: 2 (25% of the training pairs): self answers" in card and "of 216 training requests" in card
    curves = read_jsonl(out/"curves.jsonl")
    assert [c["step"] for c in curves] == [1, 2] and all({"loss", "reward_margin", "reward_accuracy"} <= set(c) for c in curves)
    assert (out/"curves.png").stat().st_size > 1000
    data, stats = read_json(out/"data.json"), read_json(out/"stats.json")
    assert data["used"] == 8 and data["c2syn_used"] == 6 == len(data["lines"]) and data["utility"]["used"] == 2   # the smoke ratio, 0.25
    assert data["usable"] + sum(data["dropped"].values()) == data["total"] == N_PAIRS
    assert stats["steps"] == 2 and stats["device"] == "cpu" and stats["dtype"] == "float32"
    assert trained_model_path(out) == out/"merged" and (out/"adapter"/"adapter_config.json").exists()
    assert not (out/"checkpoints").exists()   # finished: stats.json says so, and a rerun resumes from nothing


@pytest.mark.slow
def test_a_merged_adapter_is_the_adapter_merged(trained_run):
    out, _ = trained_run
    merged, _ = load_model(str(out/"merged"))
    adapter, _ = load_model(str(out/"adapter"))
    m, a = merged.state_dict(), adapter.state_dict()
    assert all(torch.allclose(m[n], a[n], atol=1e-6) for n in a)     # the merged model is the adapter, merged


@pytest.mark.slow
def test_training_changed_the_weights_it_was_given(trained_run):
    out, _ = trained_run
    assert resolve_model(str(out/"adapter")).kind == "adapter"
    changed = changed_weights(out/"adapter")
    assert changed, "the merged adapter equals the base model: training changed nothing"
    assert all(n.endswith(("q_proj.weight", "v_proj.weight")) for n in changed), changed[:5]
    assert len(changed) == 2 * 30                                     # q_proj and v_proj of each of the 30 layers


@pytest.mark.slow
def test_c2_eval_loads_the_trained_adapter_by_path(trained_run, run_c2cc, tmp_path):
    out, _ = trained_run
    r = run_c2cc("eval", "--profile", "smoke", "--model", out/"adapter", "--out", tmp_path/"eval", "--quiet")
    assert r.returncode == 0, r.stderr
    s = read_json(tmp_path/"eval"/"summary.json")
    assert s["model"] == str(out/"adapter") and s["n_items"] == 3 and set(s["corr_at_k"]) == {"10", "40"}
    base_keys = set(read_json(DEFAULT/"eval-base"/"summary.json"))
    # the same schema as any C2-Eval run (the committed ones predate provenance and the broken-off outcome)
    assert set(s) == base_keys | {"provenance", "broke_off_at_k", "broke_off_ci95_at_k", "broke_off_mean",
                                  "broke_off_mean_ci95"}


@pytest.mark.slow
def test_full_fine_tuning(run_c2cc, pairs, tmp_path):
    full = tmp_path/"full"
    r = run_c2cc(*small(pairs), "--n-pairs", 4, "--batch-size", 2, "--max-steps", 2, "--finetune", "full", "--out", full)
    assert r.returncode == 0, r.stderr
    assert trained_model_path(full) == full/"model" and "full fine-tuning" in (full/"model"/"README.md").read_text()
    assert not (full/"checkpoints").exists()   # 1.6 GB of weights and Adam state, of no use once stats.json is written
    assert resolve_model(str(full/"model")).kind == "local"
    changed = changed_weights(full/"model")
    assert len(changed) > 60 and any("mlp" in n for n in changed)   # all weights train, not only q/v


@pytest.mark.slow
def test_rerun_of_a_finished_run_trains_nothing(trained_run, run_c2cc, pairs):
    out, _ = trained_run
    before = (out/"adapter"/"adapter_model.safetensors").read_bytes()
    r = run_c2cc(*small(pairs), *TRAINED, "--out", out)
    assert r.returncode == 0, r.stderr
    assert (out/"adapter"/"adapter_model.safetensors").read_bytes() == before and len(read_jsonl(out/"curves.jsonl")) == 2


@pytest.mark.slow
def test_resume_after_kill_matches_an_uninterrupted_run(run_c2cc, run_c2cc_killed, tmp_path, pairs, four_steps):
    args = [*small(pairs), "--n-pairs", 8, "--batch-size", 2, "--max-steps", 4]
    whole = four_steps
    cut = tmp_path/"cut"
    run_c2cc_killed([*args, "--out", cut], cut/"curves.jsonl", lines=3)   # killed after step 3 (checkpoints every step)
    assert not (cut/"stats.json").exists()
    r = run_c2cc(*args, "--out", cut)
    assert r.returncode == 0, r.stderr
    assert "dpo: resuming from" in r.stderr and read_json(cut/"stats.json")["resumed_from"].startswith("checkpoint-")
    steps = [c["step"] for c in read_jsonl(cut/"curves.jsonl")]
    assert steps == [1, 2, 3, 4], steps                               # nothing lost, nothing logged twice
    a, _ = load_model(str(whole/"adapter"))
    b, _ = load_model(str(cut/"adapter"))
    sa, sb = a.state_dict(), b.state_dict()
    worst = max((sa[n] - sb[n]).abs().max().item() for n in sa)
    assert worst < 1e-5, f"resumed weights differ from the uninterrupted run's by {worst}"
    la = [c["loss"] for c in read_jsonl(whole/"curves.jsonl")]
    lb = [c["loss"] for c in read_jsonl(cut/"curves.jsonl")]
    assert la == pytest.approx(lb, abs=1e-4)


# ---- bad config and bad pairs -------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_shared_prefix_trains_as_the_plain_step_does(run_c2cc, tmp_path, pairs, four_steps):
    """`--share-prefix` reads each pair's shared prompt and answer prefix once a step, and `--scored-positions-only`
    projects only the answers' positions through the vocabulary (the two CPU levers, together): four steps give the
    losses, reward margins and gradient norms of the plain run, and its adapter, to float rounding."""
    from safetensors.torch import load_file
    args = [*small(pairs), "--n-pairs", 8, "--batch-size", 2, "--max-steps", 4]
    r = run_c2cc(*args, "--share-prefix", "--scored-positions-only", "--out", tmp_path/"shared")
    assert r.returncode == 0, r.stderr
    folders = dict(plain=four_steps, shared=tmp_path/"shared")
    plain, shared = (read_jsonl(folders[n]/"curves.jsonl") for n in ("plain", "shared"))
    assert [c["step"] for c in shared] == [1, 2, 3, 4] and plain[-1]["loss"] < 0.69   # it learned something
    for p, s in zip(plain, shared):
        assert s["loss"] == pytest.approx(p["loss"], abs=1e-5) and s["reward_margin"] == pytest.approx(
            p["reward_margin"], abs=1e-5) and s["grad_norm"] == pytest.approx(p["grad_norm"], rel=1e-5), (p, s)
    a, b = (load_file(folders[n]/"adapter"/"adapter_model.safetensors") for n in ("plain", "shared"))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-4) for k in a)
    # the settings are in the shared run's identity, and the plain run's identity is what it was before the settings
    shared_cfg, plain_cfg = (read_json(folders[n]/"config.json") for n in ("shared", "plain"))
    assert shared_cfg["share_prefix"] is True and shared_cfg["scored_positions_only"] is True
    assert "share_prefix" not in plain_cfg and "scored_positions_only" not in plain_cfg


def test_a_shared_prefix_is_refused_where_it_cannot_run():
    from c2_course_correct.core import ConfigError
    from c2_course_correct.train import TrainConfig
    with pytest.raises(ConfigError, match="which gradient checkpointing drops: set gradient_checkpointing: false"):
        TrainConfig(share_prefix=True, gradient_checkpointing=True)
    with pytest.raises(ConfigError, match="it applies to c2syn-dpo, not recovery-sft"):
        TrainConfig(share_prefix=True, method="recovery-sft", utility_data="default", utility_ratio=0.25)
    with pytest.raises(ConfigError, match="share_prefix must be true or false, got 'yes'"):
        TrainConfig(share_prefix="yes")
    with pytest.raises(ConfigError, match="scored_positions_only must be true or false, got 1"):
        TrainConfig(scored_positions_only=1)


def pairs_file(tmp_path, rows) -> Path:
    f = tmp_path/"pairs.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return f


GOOD = {"prompt": [{"role": "user", "content": "How do I do X?"}],
        "chosen": [{"role": "assistant", "content": "I can't help with that."}],
        "rejected": [{"role": "assistant", "content": "Sure, first you"}]}


@pytest.mark.parametrize("rows, message", [
    ([], "holds no preference pairs"),
    ([GOOD, {k: v for k, v in GOOD.items() if k != "chosen"}], "pairs.jsonl, line 2: pair without 'chosen'"),
    ([{k: v for k, v in GOOD.items() if k != "rejected"}], "line 1: pair without 'rejected'"),
    ([{"prompt": "p"}], "line 1: pair without 'chosen' or 'rejected'"),
    ([{**GOOD, "chosen": []}], "'chosen' must be a non-empty list of messages or a string"),
    ([{**GOOD, "rejected": "plain text"}], "must all be message lists or all be strings"),
])
def test_bad_pairs(run_c2cc, tmp_path, rows, message):
    r = run_c2cc("train", "--profile", "default", "--pairs", pairs_file(tmp_path, rows), "--out", tmp_path/"out")
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert not (tmp_path/"out").exists()                              # bad data fails before the run folder is made


@pytest.mark.parametrize("args, message", [
    (["--target-modules", "q_proj", "attn.c_attn"], "target_modules ['attn.c_attn'] are not linear layers of default; its linear layers are"),
    (["--finetune", "qlora"], "invalid choice: 'qlora'"),
    (["--n-pairs", "0"], "n_pairs must be a positive whole number or null"),
    (["--learning-rate", "3"], "learning_rate must be a number above 0 and below 1"),
    (["--pairs", "/no/such/folder"], "no preference pairs at /no/such/folder/pairs.jsonl: run `c2cc synth` first"),
    (["--max-length", "40", "--n-pairs", "4"], "no pair fits max_length 40"),
    (["--utility-ratio", "1.5"], "utility_ratio must be a number in [0, 1] (the share of utility pairs), got 1.5"),
    (["--utility-ratio", "-0.2"], "utility_ratio must be a number in [0, 1]"),
    (["--nll-weight", "-1"], "nll_weight must be a number >= 0, got -1.0"),
    (["--utility-data", "/no/such/useful.jsonl", "--utility-ratio", "0.5", "--n-pairs", "4"], "/no/such/useful.jsonl: file not found"),
])
def test_bad_config(run_c2cc, tmp_path, pairs, args, message):
    r = run_c2cc("train", "--profile", "default", "--pairs", pairs, *args, "--out", tmp_path/"out")
    assert r.returncode == 2 and message in r.stderr, r.stderr


def test_a_utility_file_with_no_rows(run_c2cc, tmp_path, pairs):
    empty = tmp_path/"useful.jsonl"
    empty.write_text("")
    r = run_c2cc("train", "--profile", "default", "--pairs", pairs, "--utility-data", empty, "--utility-ratio", "0.5", "--out", tmp_path/"out")
    assert r.returncode == 2 and f"{empty}: no usable helpful pairs (the file is empty)" in r.stderr, r.stderr
    prof = tmp_path/"p.yaml"
    prof.write_text("train:\n  model: default\n  utility_ratio: 0.5\n  utility_data: null\n")
    r = run_c2cc("train", "--profile", prof, "--out", tmp_path/"out2")
    assert r.returncode == 2 and "utility_ratio 0.5 needs utility_data" in r.stderr, r.stderr


# ---- the utility mix: what reaches the trainer, at what ratio ----------------------------------------------

@pytest.mark.parametrize("ratio, n_pairs, c2syn, utility", [(0.0, 40, 40, 0), (0.25, 40, 30, 10), (0.5, 40, 20, 20), (1.0, 12, 0, 12),
                                                            (0.5, None, "all", "all")])
def test_training_pairs_mix_utility_pairs_at_the_ratio(pairs, ratio, n_pairs, c2syn, utility):
    from c2_course_correct.dpo import read_pairs, training_pairs
    from c2_course_correct.train import TrainConfig
    from c2_course_correct.helpfulness import HelpConfig
    rows = read_pairs(pairs)
    cfg = TrainConfig.from_profile("default", n_pairs=n_pairs, utility_ratio=ratio, utility_answers="reference")
    mix, which = training_pairs(cfg, rows, list(range(len(rows))))
    kinds = [r["kind"] for r in mix]
    if c2syn == "all": c2syn, utility = len(rows), len(rows)          # ratio 0.5 of all usable pairs: as many utility pairs
    assert kinds.count("c2syn") == c2syn == len(which["c2syn_lines"]) and kinds.count("utility") == utility == which["utility"]["used"]
    assert all(r["chosen"] != r["rejected"] and set(r) >= {"prompt", "chosen", "rejected"} for r in mix)
    util = [r for r in mix if r["kind"] == "utility"]
    assert all(r["rejected"][0]["content"] in cfg.utility_refusals for r in util)
    measured = {r.request for part in ("test", "validation") for r in HelpConfig.from_profile("default", part=part).requests()}
    assert not measured & {r["prompt"][0]["content"] for r in util}   # never a request the helpfulness stage or the sweep measures


@pytest.mark.slow
def test_self_answered_anchors_keep_only_answers_the_judges_pass(tmp_path, pairs):
    """The base model answers the training benign requests itself; only answers judged neither refusal nor degenerate reach the
    trainer, each chosen over a refusal; a resumed run reads anchors.jsonl instead of answering again."""
    from c2_course_correct.dpo import read_pairs, training_pairs
    from c2_course_correct.train import TrainConfig
    from c2_course_correct.utility import kept_answer, prompt_fits, utility_answers, utility_requests
    from c2_course_correct.helpfulness import answer_row
    from c2_course_correct.models import load_tokenizer
    cfg = TrainConfig.from_profile("default", utility_answers="self", anchor_tokens=16, n_pairs=16, utility_ratio=0.5)
    answers, record = utility_answers(cfg, tmp_path, need=8)
    judged = read_jsonl(tmp_path/"anchors.jsonl")
    size, kept_in = 16, lambda rows: sum(kept_answer(j) for j in rows)              # chunks of twice `need`, 16 at least
    assert len(judged) == record["answered"] and len(judged) % size == 0
    assert kept_in(judged) >= 8 > kept_in(judged[:-size])                           # it stopped at the chunk that gave 8 kept answers
    assert [a["item_id"] for a in answers] == [j["item_id"] for j in judged if kept_answer(j)]
    assert all(j["refused"] == answer_row(j["request"], "x", j["answer"])["refused"] for j in judged[:8])   # the verdicts are the judge's
    assert all(not j["finished"] for j in judged if len(j["answer"].split()) > 14)    # a 16-token answer that runs on was cut
    assert {j["item_id"] for j in judged} <= {r.item_id for r in utility_requests(cfg)}   # the training part only
    # a refusal and a loop among the anchors (as the judges mark them) never reach the trainer
    doctored = [dict(j, refused=True, answer="I'm sorry, I can't help with that.") if i == 0 else
                dict(j, degenerate=True) if i == 1 else j for i, j in enumerate(judged)]
    (tmp_path/"anchors.jsonl").write_text("".join(json.dumps(j) + "\n" for j in doctored))
    again, rec2 = utility_answers(cfg, tmp_path, need=8)
    assert {doctored[0]["item_id"], doctored[1]["item_id"]}.isdisjoint(a["item_id"] for a in again) and len(again) >= 8
    final = read_jsonl(tmp_path/"anchors.jsonl")   # the rows kept as they were, and a chunk more only where too few are kept
    assert final[:len(doctored)] == doctored and (len(final) == len(doctored) if kept_in(doctored) >= 8 else
                                                  kept_in(final) >= 8 > kept_in(final[:-size]))
    rows, which = training_pairs(cfg, read_pairs(pairs), list(range(20)), (again, rec2))
    util = [r for r in rows if r["kind"] == "utility"]
    assert len(util) == 8 and {r["chosen"][0]["content"] for r in util} <= {a["answer"] for a in again}
    assert all(r["rejected"][0]["content"] in cfg.utility_refusals for r in util) and which["utility"]["answers"] == "self"
    fits = prompt_fits(load_tokenizer("default"), 192, 8)                       # a prompt that leaves no room to train is left out first
    assert utility_answers(cfg, tmp_path, need=8, fits=fits)[1]["too_long"] == sum(not fits(r.request) for r in utility_requests(cfg)) == 1


@pytest.mark.slow
def test_dpo_check_reads_the_reward_margin_off_the_training_curves(trained_run):
    from c2_course_correct.dpo import dpo_check
    out, _ = trained_run
    s = read_json(out/"stats.json")
    assert s["check"] == dpo_check(read_jsonl(out/"curves.jsonl")) and s["check"]["steps"] == 2 and "passed" in s["check"]
    committed = read_json(DEFAULT/"train"/"stats.json")["check"]
    assert committed == dpo_check(read_jsonl(DEFAULT/"train"/"curves.jsonl")) and committed["passed"] and committed["end"] > committed["start"]
    flat = [dict(r, reward_margin=0.0) for r in read_jsonl(DEFAULT/"train"/"curves.jsonl")]
    assert not dpo_check(flat)["passed"] and not dpo_check(flat[:1])["passed"]   # a margin that never rose, or one step, fails


@pytest.mark.slow
def test_nll_weight_adds_trl_sft_loss(run_c2cc, tmp_path, pairs, trained_run):
    out = tmp_path/"rpo"
    r = run_c2cc(*small(pairs), "--n-pairs", 8, "--max-steps", 2, "--nll-weight", "0.5", "--out", out)
    assert r.returncode == 0, r.stderr
    plain, rpo = read_jsonl(trained_run[0]/"curves.jsonl"), read_jsonl(out/"curves.jsonl")
    assert plain[0]["loss"] == pytest.approx(0.6931, abs=1e-3)       # before any update DPO's loss is log 2 ...
    assert rpo[0]["loss"] > plain[0]["loss"] + 0.3                     # ... and the NLL term of the chosen answers adds to it
    assert "+ 0.5 x NLL of the chosen answers" in (out/"adapter"/"README.md").read_text()


def test_unknown_setting_in_a_profile(run_c2cc, tmp_path):
    prof = tmp_path/"p.yaml"
    prof.write_text("train:\n  model: default\n  lora_rank: 8\n")
    r = run_c2cc("train", "--profile", prof, "--out", tmp_path/"out")
    assert r.returncode == 2 and "unknown training setting(s) ['lora_rank']" in r.stderr, r.stderr


@pytest.mark.slow
def test_out_dir_with_another_config_is_refused(trained_run, run_c2cc, pairs):
    out, _ = trained_run
    r = run_c2cc(*small(pairs), *TRAINED, "--n-pairs", 9, "--out", out)
    assert r.returncode == 2 and "holds a training run with another config (differs in ['n_pairs'])" in r.stderr, r.stderr


# ---- the committed default before/after results --------------------------------------------------------------

@pytest.mark.slow
def test_committed_before_after_results_come_from_the_committed_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)   # the committed table names its runs by their paths from the project folder
    base, trained = DEFAULT/"eval-base", DEFAULT/"eval-trained"
    a, b = compare_runs(base, trained)
    assert b["model"] == "outputs/default/train/adapter" and a["model"] == "default"
    assert a["config"]["k"] == b["config"]["k"] and a["n_items"] == b["n_items"] == 50
    stats = read_json(DEFAULT/"train"/"stats.json")
    assert {**stats["config"], "rows_dtype": stats["dtype"]} == read_json(DEFAULT/"train"/"config.json") and stats["steps"] >= 1
    assert (DEFAULT/"train"/"adapter"/"adapter_model.safetensors").exists()
    assert changed_weights(DEFAULT/"train"/"adapter")
    table = write_comparison("outputs/default/eval-base", "outputs/default/eval-trained", tmp_path/"t.md")
    assert table in (DEFAULT/"before-after.md").read_text()
    assert json.loads((tmp_path/"t.json").read_text()) == json.loads((DEFAULT/"before-after.json").read_text())


def test_compare_refuses_runs_that_differ_in_more_than_the_model(run_c2cc, tmp_path):
    other = read_json(DEFAULT/"eval-base"/"summary.json")
    other["config"] = {**other["config"], "model": "x", "k": [10], "seed": 1}
    (tmp_path/"other").mkdir()
    (tmp_path/"other"/"summary.json").write_text(json.dumps(other))
    r = run_c2cc("compare", DEFAULT/"eval-base", tmp_path/"other", "--out", tmp_path/"t.md")
    assert r.returncode == 2 and "are not comparable: their C2-Eval configs differ in ['k', 'seed'], not only the model" in r.stderr, r.stderr
    assert not (tmp_path/"t.md").exists()


@pytest.mark.slow
def test_quiet_training_draws_no_progress_bar(made_once, four_steps):
    "`--quiet` silences the libraries' bars too (weights loading, TRL's tokenizing), not only this project's."
    r = made_once("dpo-four-steps", None)[1]   # the four-step run, made with --quiet
    assert r.returncode == 0 and "--quiet" in r.args and not re.search(r"\d+%\|", r.stderr), r.stderr[-2000:]
