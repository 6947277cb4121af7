"""Shared fixtures: the repository, the shared PKU-SafeRLHF sample, and runners for the real `c2cc` command."""
import os, signal, subprocess, sys, time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent/"shared"/"data"


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def pku_sample() -> Path:
    p = SHARED_DATA/"pku_saferlhf_sample.jsonl"
    if not p.exists(): pytest.skip(f"{p} is not beside this checkout")
    return p


def c2cc(*args, cwd=None, env=None, timeout=900) -> subprocess.CompletedProcess:
    "Run the installed `c2cc` console script."
    exe = Path(sys.executable).parent/"c2cc"
    return subprocess.run([str(exe), *map(str, args)], cwd=cwd or REPO, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def run_c2cc():
    return c2cc


def c2cc_killed_when(args, watch: Path, lines: int, timeout: float = 300, env=None) -> None:
    "Start `c2cc args` and kill it (SIGKILL) once `watch` holds `lines` lines; fail if it finishes first."
    proc = subprocess.Popen([str(Path(sys.executable).parent/"c2cc"), *map(str, args)], cwd=REPO,
                            env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if watch.exists() and watch.read_text().count("\n") >= lines: break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed; make it longer"
    proc.send_signal(signal.SIGKILL); proc.wait()


@pytest.fixture(scope="session")
def run_c2cc_killed():
    return c2cc_killed_when
