"""Every notebook runs top to bottom with nbdev_test: each is documentation, source and test at once, and leaves
nothing behind in the temporary directory."""
import os, subprocess, sys
from pathlib import Path

import pytest

CACHES = ("torchinductor_",)   # torch's compile cache: made once per user and reused by every later run, so nothing piles up
NBS = sorted((Path(__file__).resolve().parents[1]/"nbs").glob("*.ipynb"))


@pytest.mark.parametrize("nb", NBS, ids=[p.stem for p in NBS])
def test_notebook(nb, tmp_path):
    exe = Path(sys.executable).parent/"nbdev_test"
    env = os.environ | {"TMPDIR": str(tmp_path)}   # a private temporary directory: whatever the notebook leaves there shows
    r = subprocess.run([str(exe), "--path", str(nb), "--do_print"], cwd=nb.parent, capture_output=True, text=True, timeout=1200, env=env)
    assert r.returncode == 0, f"{nb.name} failed:\n{r.stdout[-4000:]}\n{r.stderr[-8000:]}"
    left = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(CACHES))
    assert not left, f"{nb.name} left temporary files: {left}"
