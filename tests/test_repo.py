"""The repository is consistent: the library is what the notebooks export, the README is index.ipynb."""
import re, shutil, subprocess, sys
from pathlib import Path

from c2_course_correct.core import notebook_markdown


def test_readme_is_index_notebook(repo):
    assert (repo/"README.md").read_text() == notebook_markdown(repo/"nbs"/"index.ipynb"), "run `make readme`"


def test_readme_gives_two_setup_commands_and_content_warning(repo):
    text = (repo/"README.md").read_text()
    assert text.index("Content warning") < text.index("## Two commands")
    assert "make reproduce" in text and "make test" in text and "safety research" in text
    assert "make test" in (repo/".ci"/"run").read_text()
    recipe = re.search(r"^reproduce:.*\n\t(.+)$", (repo/"Makefile").read_text(), re.M).group(1)
    assert recipe == "$(BIN)/c2cc reproduce --profile default --out $(OUT) $(if $(DTYPE),--dtype $(DTYPE))"
    assert re.search(r"^DTYPE \?= auto$", (repo/"Makefile").read_text(), re.M)   # bf16 where it pays; DTYPE= pins the profile's fp32


def test_readme_shows_the_committed_headline_table_and_figure(repo):
    text = (repo/"README.md").read_text()
    assert (repo/"outputs"/"default"/"tables"/"before_after.md").read_text().strip() in text, "copy the table into nbs/index.ipynb"
    for image in re.findall(r"!\[[^]]*\]\(([^)]+)\)", text): assert (repo/image).exists(), image


def test_library_is_exported_from_notebooks(repo, tmp_path):
    # export into a copy, so a stale library shows as a difference without touching the checkout
    copy = tmp_path/"copy"
    shutil.copytree(repo/"nbs", copy/"nbs")
    shutil.copytree(repo/"c2_course_correct", copy/"c2_course_correct", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(repo/"settings.ini", copy/"settings.ini")
    subprocess.run([str(Path(sys.executable).parent/"nbdev_export")], cwd=copy, check=True, capture_output=True)
    for f in sorted((repo/"c2_course_correct").glob("*.py")):
        assert (copy/"c2_course_correct"/f.name).read_text() == f.read_text(), f"{f.name} differs from nbs/: run nbdev_export"
