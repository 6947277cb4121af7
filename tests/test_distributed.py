"""Training on several processes. `accelerate launch --cpu --num_processes 2 c2cc train` runs two ranks on gloo.
- They split the profile's global batch, so every step's loss is the one-process run's (within LOSS_TOLERANCE).
- `stats.json` records `world_size: 2`; only rank 0 writes (one curve row per step).
- A two-process run killed after a checkpoint resumes and ends like an uninterrupted one."""
import subprocess, sys, time
from pathlib import Path

import psutil
import pytest

from c2_course_correct.core import read_json, read_jsonl

LOSS_TOLERANCE = 1e-4   # absolute, per step: the same pairs in every step, summed in another order and padded per rank
BIN = Path(sys.executable).parent


def two_processes(pairs, out) -> list[str]:
    "The run of `four_steps` (conftest.py) on two processes."
    return [str(BIN/"accelerate"), "launch", "--cpu", "--num_processes", "2", str(BIN/"c2cc"), "train", "--profile", "smoke",
            "--n-pairs", "8", "--batch-size", "2", "--max-steps", "4", "--quiet", "--pairs", str(pairs), "--out", str(out)]


@pytest.mark.slow
def test_two_processes_give_one_process_losses_and_resume_after_a_kill(repo, pairs, four_steps, tmp_path):
    one = read_jsonl(four_steps/"curves.jsonl")
    assert [c["step"] for c in one] == [1, 2, 3, 4] and read_json(four_steps/"stats.json")["world_size"] == 1

    out = tmp_path/"two"
    proc = subprocess.Popen(two_processes(pairs, out), cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None and not list((out/"checkpoints").glob("checkpoint-2/trainer_state.json")):
        time.sleep(0.05)
    assert proc.poll() is None, f"the two-process run ended before it could be killed:\n{proc.stderr.read()[-3000:]}"
    tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]   # torchrun starts its ranks in new sessions
    assert sum("c2cc" in " ".join(p.cmdline()) for p in tree) >= 3, [p.cmdline() for p in tree]   # the relaunching one and two ranks
    for p in tree: p.kill()
    psutil.wait_procs(tree, timeout=30)
    assert not (out/"stats.json").exists() and len(read_jsonl(out/"curves.jsonl", repair=True)) < 4

    r = subprocess.run(two_processes(pairs, out), cwd=repo, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-4000:]
    assert "starting 2 with torch.distributed.run" in r.stderr and "resuming from" in r.stderr
    stats = read_json(out/"stats.json")
    assert stats["world_size"] == 2 and stats["per_device_batch"] * 2 == stats["global_batch"] and stats["resumed_from"] == "checkpoint-2"
    two = read_jsonl(out/"curves.jsonl")
    assert [c["step"] for c in two] == [1, 2, 3, 4], "one row per step: only rank 0 writes, and the resume drops nothing"
    assert [c["epoch"] for c in two] == [c["epoch"] for c in one]          # the same share of the data per step
    diffs = [abs(a["loss"] - b["loss"]) for a, b in zip(one, two)]
    print("loss one process:", [c["loss"] for c in one], "two processes:", [c["loss"] for c in two], "max |diff|:", max(diffs))
    assert max(diffs) <= LOSS_TOLERANCE and one[-1]["loss"] != one[0]["loss"], diffs


def test_shipped_accelerate_configs_load_for_eight_gpus(repo):
    from accelerate.commands.config.config_args import load_config_from_file
    kinds = {}
    for f in sorted((repo/"configs"/"accelerate").glob("*.yaml")):
        c = load_config_from_file(str(f))
        assert c.num_processes == 8 and c.num_machines == 1 and not c.use_cpu, f.name
        kinds[f.stem] = str(c.distributed_type).rsplit(".", 1)[-1]
        if f.stem == "fsdp": assert c.fsdp_config["fsdp_state_dict_type"] == "SHARDED_STATE_DICT"   # every rank checkpoints its shard
        if f.stem == "zero3": assert c.deepspeed_config["zero_stage"] == 3
    assert kinds == {"ddp": "MULTI_GPU", "fsdp": "FSDP", "zero3": "DEEPSPEED"}
