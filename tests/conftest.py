"""Shared fixtures: the repository, the shared PKU-SafeRLHF sample, and a runner for the real `c2cc` command."""
import os, subprocess, sys
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
