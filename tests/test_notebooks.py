"""Every notebook runs top to bottom with nbdev_test: each is documentation, source and test at once."""
import subprocess, sys
from pathlib import Path

import pytest

NBS = sorted((Path(__file__).resolve().parents[1]/"nbs").glob("*.ipynb"))


@pytest.mark.parametrize("nb", NBS, ids=[p.stem for p in NBS])
def test_notebook(nb):
    exe = Path(sys.executable).parent/"nbdev_test"
    r = subprocess.run([str(exe), "--path", str(nb), "--do_print"], cwd=nb.parent, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, f"{nb.name} failed:\n{r.stdout[-4000:]}\n{r.stderr[-8000:]}"
