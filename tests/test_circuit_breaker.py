"""Circuit breakers (`--method circuit-breaker`, nbs/36_circuit_breaker.ipynb): the rows pair a rerouted harmful answer
with a retained refusal or helpful answer, the rerouting loss's gradient lowers the cosine similarity on a real batch,
the schedule, a short `c2cc train` whose adapter sits only below the highest target layer and whose check is in
stats.json, a run killed mid-way resumed to the uninterrupted run's adapter, and bad settings with their messages."""
from pathlib import Path

import pytest
import torch

from c2_course_correct.circuit_breaker import (both_hidden, circuit_breaker_examples, coefficients, pair_batch,
                                              rerouting_loss)
from c2_course_correct.sft import harmful_examples
from c2_course_correct.core import read_json, read_jsonl
from c2_course_correct.models import load_model
from c2_course_correct.retain import retain_layers
from c2_course_correct.train import TrainConfig, lora_config
from c2_course_correct.utility import utility_answers

REPO = Path(__file__).resolve().parents[1]
SYNTH = REPO/"outputs"/"default"/"synth"
SHORT = ["train", "--profile", "smoke", "--pairs", SYNTH, "--method", "circuit-breaker", "--utility-data", "default",
         "--utility-ratio", 0.5, "--utility-answers", "reference", "--n-pairs", 6, "--batch-size", 2, "--max-steps", 3,
         "--save-steps", 1, "--learning-rate", 0.001, "--check-records", 4, "--quiet"]


@pytest.fixture(scope="module")
def cfg():
    return TrainConfig.from_profile("default", method="circuit-breaker", pairs=str(SYNTH), utility_ratio=0.5,
                                    utility_answers="reference", n_pairs=8)


def test_rows_pair_each_rerouted_answer_with_a_retained_record(cfg):
    model, tok = load_model("default")
    rows, data = circuit_breaker_examples(cfg, tok, utility_answers(cfg, need=4))
    assert len(rows) == 8 and data["kinds"] == dict(reroute=8, refusal=4, utility=4)
    harmful = {h["request_id"]: h["harmful"] for h in harmful_examples(SYNTH)}
    for r in rows:
        marked = [x for x, y in zip(r["input_ids"], r["labels"]) if y != -100]
        assert marked and harmful[r["request_id"]].startswith(tok.decode(marked))   # the harmful answer, not the request
        assert tok.decode(r["input_ids"]).count("<|im_start|>user") == 1
    refusals = [tok.decode(r["retain_ids"]) for r in rows if r["retain_kind"] == "refusal"]
    assert len(refusals) == 4 and all("<|im_start|>assistant" in t for t in refusals)
    b = pair_batch(rows[:3], tok.pad_token_id)
    assert b["input_ids"].shape[0] == 6 and int(b["reroute_mask"][3:].sum()) == int(b["retain_mask"][:3].sum()) == 0


def test_the_rerouting_gradient_lowers_the_cosine_on_a_real_batch(cfg):
    """A fresh adapter is the identity (loss 1, zero gradient); from one step off it, a gradient step of the rerouting
    loss lowers the cosine similarity to the frozen model on the same batch."""
    from peft import get_peft_model
    model, tok = load_model("default")
    rows, _ = circuit_breaker_examples(cfg, tok, utility_answers(cfg, need=4))
    b = pair_batch(rows[:2], tok.pad_token_id)
    targets = retain_layers(None, model.config.num_hidden_layers, "reroute_layers")
    peft = lora_config(cfg); peft.layers_to_transform = list(range(max(targets)))
    net = get_peft_model(model, peft).train()
    loss = lambda relu=True: rerouting_loss(*both_hidden(net, net, b, max(targets)), targets, b["reroute_mask"], relu)
    assert float(loss().detach()) == pytest.approx(1.0, abs=1e-5)
    torch.manual_seed(0)
    with torch.no_grad():   # one step off the identity, where the cosine has a gradient
        for n, p in net.named_parameters():
            if "lora_B" in n: p.normal_(0, 1e-3)
    before = loss()
    before.backward()
    with torch.no_grad():
        for p in net.parameters():
            if p.grad is not None: p -= 0.1 * p.grad / p.grad.norm().clamp(min=1e-12)
    after = float(loss(relu=False))
    assert after < float(before) - 1e-4, (float(before), after)


def test_the_schedule_moves_weight_from_rerouting_to_retain():
    assert coefficients(10, 0, 60) == (10, 0)
    assert coefficients(10, 30, 60) == (7.5, 2.5) and coefficients(10, 60, 60) == (5, 5)
    assert coefficients(5, 30, 60) == (3.75, 1.25)


@pytest.mark.slow
def test_train_then_resume_after_a_kill(run_c2cc, run_c2cc_killed, tmp_path):
    """Three steps: the adapter sits on the layers below the highest target only, curves log both terms, the check is
    in stats.json with the three measured sets; a run killed after step 2 resumes to the same adapter."""
    from safetensors.torch import load_file
    r = run_c2cc(*SHORT, "--out", tmp_path/"whole")
    assert r.returncode == 0, r.stderr
    s = read_json(tmp_path/"whole"/"stats.json")
    assert s["method"] == "circuit-breaker" and s["steps"] == 3 and s["data"]["kinds"] == dict(reroute=6, refusal=3,
                                                                                                utility=3)
    layers = {int(k.split(".layers.")[1].split(".")[0])
              for k in load_file(tmp_path/"whole"/"adapter"/"adapter_model.safetensors")}
    assert layers == set(range(19))                                        # targets 9 and 19 of the 30 layers
    curves = read_jsonl(tmp_path/"whole"/"curves.jsonl")
    assert [c["step"] for c in curves] == [1, 2, 3] and all("reroute" in c and "retain_l2" in c for c in curves)
    c = s["check"]
    assert set(c) >= {"training", "harmful_validation", "benign_validation", "passed"} and c["before"] == 1.0
    assert all(0 < c[k]["tokens"] and -1 <= c[k]["cosine"] <= 1 for k in ("training", "harmful_validation",
                                                                           "benign_validation"))
    assert "circuit breakers" in (tmp_path/"whole"/"adapter"/"README.md").read_text()
    cut = tmp_path/"cut"
    run_c2cc_killed([*SHORT, "--out", cut], cut/"curves.jsonl", lines=2)
    assert not (cut/"stats.json").exists()
    r = run_c2cc(*SHORT, "--out", cut)
    assert r.returncode == 0 and "circuit-breaker: resuming from" in r.stderr, r.stderr
    assert [c["step"] for c in read_jsonl(cut/"curves.jsonl")] == [1, 2, 3]
    a, b = (load_file(f/"adapter"/"adapter_model.safetensors") for f in (tmp_path/"whole", cut))
    assert max((a[n] - b[n]).abs().max().item() for n in a) < 1e-5


@pytest.mark.parametrize("args,msg", [
    (["--reroute-alpha", 0], "reroute_alpha must be a number above 0, got 0"),
    (["--reroute-layers", 0, 5], "reroute_layers must be a non-empty list of layer numbers from 1, got [0, 5]"),
    (["--utility-ratio", 0], "method circuit-breaker trains on utility data beside its recovery examples"),
    (["--reroute-layers", 12, 40], "reroute_layers [40] lie outside the model's 30 decoder layers"),
])
def test_bad_settings_are_one_line(run_c2cc, tmp_path, args, msg):
    base = [a for a in SHORT if a != "--quiet"]
    r = run_c2cc(*base, *args, "--out", tmp_path/"run")
    assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr, r.stderr
