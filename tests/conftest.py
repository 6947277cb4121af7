"""Shared fixtures: the repository, the PKU-SafeRLHF sample the package ships, and runners for the real `c2cc` command (and any
other command of this environment), started from a warm Python (`warm.py`) where they can be."""
import os, signal, subprocess, sys, time
from pathlib import Path

import pytest

from warm import WarmPython

REPO = Path(__file__).resolve().parents[1]
C2CC = str(Path(sys.executable).parent/"c2cc")


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def pku_sample() -> Path:
    "The PKU-SafeRLHF sample the package ships (`assets/`): a file in the hub dataset's schema."
    from c2_course_correct.data import pku_sample_path
    return pku_sample_path()


@pytest.fixture(scope="session")
def warm(tmp_path_factory):
    "One warm Python per test worker (see warm.py)."
    w = WarmPython(tmp_path_factory.mktemp("warm"))
    yield w
    w.close()


@pytest.fixture(scope="session")
def run_command(warm):
    def run(argv, cwd=REPO, env=None, timeout=900) -> subprocess.CompletedProcess:
        "Run `argv` (in `cwd`, with `env` added to this environment) to its end; output captured as text."
        argv, env = [str(a) for a in argv], {**os.environ, **(env or {})}
        if warm.warms(argv, env): return warm.run(argv, cwd, env, timeout)
        return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return run


@pytest.fixture(scope="session")
def run_c2cc(run_command):
    def c2cc(*args, cwd=None, env=None, timeout=900) -> subprocess.CompletedProcess:
        "Run the installed `c2cc` console script."
        return run_command([C2CC, *args], cwd or REPO, env, timeout)
    return c2cc


@pytest.fixture(scope="session")
def run_c2cc_killed(warm):
    def c2cc_killed_when(args, watch: Path, lines: int, timeout: float = 300, env=None) -> None:
        "Start `c2cc args` and kill it (SIGKILL) once `watch` holds `lines` lines; fail if it finishes first."
        argv, env = [C2CC, *map(str, args)], {**os.environ, **(env or {})}
        proc = (warm.start(argv, REPO, env) if warm.warms(argv, env) else
                subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.time() + timeout
        while time.time() < deadline and proc.poll() is None:
            if watch.exists() and watch.read_text().count("\n") >= lines: break
            time.sleep(0.02)
        assert proc.poll() is None, "the run finished before it could be killed; make it longer"
        proc.send_signal(signal.SIGKILL); proc.wait()
    return c2cc_killed_when



@pytest.fixture(scope="session")
def made_once(tmp_path_factory, worker_id):
    """`made_once(name, make)`: the folder `make(folder)` filled, made once for the whole session whichever test worker
    asks first (the others wait for it, then read it), and what `make` returned (JSON, or a finished command). For
    what tests in several places read: a training run, a C2-Syn run."""
    import json, shutil
    from filelock import FileLock
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if worker_id != "master" else base)/"made-once"   # one folder for every worker of the session
    shared.mkdir(exist_ok=True)
    def once(name: str, make):
        folder, done = shared/name, shared/f"{name}.json"
        with FileLock(str(shared/f"{name}.lock")):
            if not done.exists():
                shutil.rmtree(folder, ignore_errors=True)
                got = make(folder)
                done.write_text(json.dumps(dict(command=[str(a) for a in got.args], returncode=got.returncode,
                                                stdout=got.stdout, stderr=got.stderr)
                                           if isinstance(got, subprocess.CompletedProcess) else dict(value=got)))
        got = json.loads(done.read_text())
        return folder, (subprocess.CompletedProcess(got["command"], got["returncode"], got["stdout"], got["stderr"])
                        if "command" in got else got["value"])
    return once


def changed_weights(model_dir) -> list[str]:
    "Names of the weights of a trained model (as `load_model` loads it) that differ from the base model's."
    import torch
    from c2_course_correct.models import load_model
    trained, _ = load_model(str(model_dir))
    base = load_model("default")[0].state_dict()
    return [n for n, p in trained.state_dict().items() if n in base and not torch.equal(p, base[n])]


@pytest.fixture(scope="session")
def pairs(made_once) -> Path:
    "The first 10 requests' pairs (150) of the committed default C2-Syn run: DPO data that keeps each training test short."
    def make(folder):
        folder.mkdir()
        lines = (REPO/"outputs"/"default"/"synth"/"pairs.jsonl").read_text().splitlines(keepends=True)
        (folder/"pairs.jsonl").write_text("".join(lines[:150]))
    return made_once("dpo-pairs", make)[0]/"pairs.jsonl"


FOUR_STEPS = ["--profile", "smoke", "--n-pairs", 8, "--batch-size", 2, "--max-steps", 4, "--quiet"]


@pytest.fixture(scope="session")
def four_steps(run_c2cc, made_once, pairs) -> Path:
    """An uninterrupted smoke DPO run of four steps of two pairs on `pairs`: what the resumed, the shared-prefix and the
    two-process runs must give."""
    out, r = made_once("dpo-four-steps", lambda out: run_c2cc("train", *FOUR_STEPS, "--pairs", pairs, "--out", out))
    assert r.returncode == 0, r.stderr
    return out
