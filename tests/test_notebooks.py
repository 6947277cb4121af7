"""Every notebook runs top to bottom with nbdev_test: each is documentation, source and test at once, and leaves
nothing behind in the temporary directory."""
import sys
from pathlib import Path

import pytest

CACHES = ("torchinductor_",)   # torch's compile cache: made once per user and reused by every later run, so nothing piles up
NBS = sorted((Path(__file__).resolve().parents[1]/"nbs").glob("*.ipynb"))


# the notebooks that train, generate more than a few tokens or run the pipeline (measured: over 3 s each)
SLOW = {"02_models", "03_generate", "04_judge", "10_benchmark", "20_synthesis", "29_utility", "30_dpo", "31_sft",
        "35_sweep", "39_attacks", "40_safety", "45_helpfulness", "50_figures", "60_reproduce"}


@pytest.mark.parametrize("nb", [pytest.param(p, marks=[pytest.mark.slow] if p.stem in SLOW else []) for p in NBS],
                         ids=[p.stem for p in NBS])
def test_notebook(nb, tmp_path, run_command):
    exe = Path(sys.executable).parent/"nbdev_test"
    env = {"TMPDIR": str(tmp_path)}   # a private temporary directory: whatever the notebook leaves there shows
    r = run_command([exe, "--path", nb, "--do_print"], nb.parent, env, timeout=1200)
    assert r.returncode == 0, f"{nb.name} failed:\n{r.stdout[-4000:]}\n{r.stderr[-8000:]}"
    left = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(CACHES))
    assert not left, f"{nb.name} left temporary files: {left}"
