"""The retain term (issue 37, nbs/27_retain.ipynb): zero while the adapter is the identity and positive once it moved;
beside any method's loss, logged per step; bad settings name themselves."""
import pytest, torch

from c2_course_correct.core import read_jsonl
from c2_course_correct.data import benign_pool
from c2_course_correct.models import load_model
from c2_course_correct.retain import retain_batch, retain_layers, retain_term


def test_the_kl_term_is_zero_for_a_fresh_adapter_and_positive_after_a_step_on_other_data():
    from peft import LoraConfig, get_peft_model
    model, tok = load_model("default")
    records = [dict(request=b.request, answer=b.reference) for b in benign_pool("default", "train") if b.reference][:4]
    batch, other = (retain_batch(tok, records, i, 2, 96, "cpu") for i in (0, 2))
    peft = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], lora_dropout=0.0))
    layers = retain_layers(None, model.config.num_hidden_layers)
    assert retain_term(peft, batch, "kl").item() == 0 and retain_term(peft, batch, "hidden", layers).item() == 0
    opt = torch.optim.SGD([p for p in peft.parameters() if p.requires_grad], lr=0.5)
    peft(**other, labels=other["input_ids"].masked_fill(other["attention_mask"] == 0, -100)).loss.backward()
    opt.step(); opt.zero_grad()
    kl = retain_term(peft, batch, "kl")
    assert kl.item() > 0 and retain_term(peft, batch, "hidden", layers).item() > 0
    kl.backward()   # its gradient lowers it
    opt.step()
    assert retain_term(peft, batch, "kl").item() < kl.item()


@pytest.mark.parametrize("args, message", [
    (["--retain", "kl", "--utility-ratio", "0"], "retain: kl is measured on the utility records"),
    (["--retain", "kl", "--retain-weight", "-1"], "retain_weight must be a number above 0, got -1.0"),
    (["--retain", "kl", "--retain-layers", "3"], "retain_layers must be a non-empty list of layer numbers from 1, for retain: hidden"),
    (["--retain", "hidden", "--retain-layers", "31", "--max-steps", "1"], "retain_layers [31] lie outside the model's 30 decoder layers"),
    (["--no-utility-loss"], "utility_loss: false leaves the utility records to the retain term alone, and retain is none"),
    (["--method", "circuit-breaker", "--retain", "kl", "--no-utility-loss"], "utility_loss: false does not apply to method circuit-breaker"),
])
def test_bad_retain_settings_are_one_line(run_c2cc, tmp_path, args, message):
    r = run_c2cc("train", "--profile", "smoke", "--pairs", "outputs/default/synth", "--n-pairs", 8, *args,
                 "--utility-answers", "reference", "--out", tmp_path/"run", "--quiet")
    assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("method, retain", [("recovery-sft", "kl"), ("c2syn-dpo", "hidden")])
def test_the_retain_term_trains_beside_each_kind_of_trainer(run_c2cc, tmp_path, method, retain):
    "TRL's SFT and DPO trainers: the term is 0 until the adapter moves (step 1's learning rate is 0), then positive."
    r = run_c2cc("train", "--profile", "smoke", "--method", method, "--pairs", "outputs/default/synth", "--n-pairs", 8,
                 "--max-steps", 3, "--batch-size", 2, "--utility-answers", "reference", "--retain", retain,
                 "--out", tmp_path/"run", "--quiet")
    assert r.returncode == 0, r.stderr
    curves = read_jsonl(tmp_path/"run"/"curves.jsonl")
    assert [c["retain"] == 0 for c in curves] == [True, True, False] and all(c["retain"] >= 0 for c in curves)
    assert "- retain: + 1.0 x the " in (tmp_path/"run"/"adapter"/"README.md").read_text()


@pytest.mark.parametrize("method", ["recovery-sft", "c2syn-dpo"])
def test_utility_loss_false_keeps_the_utility_records_out_of_the_loss(tmp_path, method):
    "The same draw of utility answers: with utility_loss false none is a training row, and the retain term gets them all."
    from c2_course_correct.dpo import training_pairs, usable_pairs, read_pairs
    from c2_course_correct.models import load_tokenizer
    from c2_course_correct.sft import method_examples
    from c2_course_correct.train import TrainConfig
    from c2_course_correct.utility import utility_answers
    tok = load_tokenizer("default")
    cfg = lambda **kw: TrainConfig.from_profile("default", method=method, utility_ratio=0.5, n_pairs=16,
                                                utility_answers="reference", retain="kl", **kw)
    answers = utility_answers(cfg(), need=8)
    rows = {}
    for loss in (True, False):
        c = cfg(utility_loss=loss)
        if method == "c2syn-dpo":
            pairs = read_pairs(c.pairs_file)
            rows[loss], data = training_pairs(c, pairs, usable_pairs(pairs, tok, c.max_length, 8)[0], answers)
        else: rows[loss], data = method_examples(c, tok, answers)
        assert data["utility"].get("in_loss", True) is loss
    assert sum(r["kind"] == "utility" for r in rows[True]) == 8 and not any(r["kind"] == "utility" for r in rows[False])
    assert [r for r in rows[True] if r["kind"] != "utility"] == rows[False]
