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
    # every module but the package's __init__ is written afresh: a module no notebook exports does not come back
    for f in (copy/"c2_course_correct").glob("*.py"):
        if f.name != "__init__.py": f.unlink()
    subprocess.run([str(Path(sys.executable).parent/"nbdev_export")], cwd=copy, check=True, capture_output=True)
    assert sorted(f.name for f in (copy/"c2_course_correct").glob("*.py")) == sorted(f.name for f in (repo/"c2_course_correct").glob("*.py"))
    for f in sorted((repo/"c2_course_correct").glob("*.py")):
        assert (copy/"c2_course_correct"/f.name).read_text() == f.read_text(), f"{f.name} differs from nbs/: run nbdev_export"


def package_imports(repo) -> dict[str, set[str]]:
    "Each module of the package and the package modules it imports (at any depth of the file: lazy imports count)."
    import ast
    mods = {p.stem: p for p in (repo/"c2_course_correct").glob("*.py") if p.stem not in ("__init__", "_modidx")}
    graph = {}
    for name, path in mods.items():
        found = set()
        for n in ast.walk(ast.parse(path.read_text())):
            if isinstance(n, ast.ImportFrom) and n.level == 1 and n.module: found.add(n.module.split(".")[0])
            if isinstance(n, ast.ImportFrom) and n.level == 0 and (n.module or "").startswith("c2_course_correct."): found.add(n.module.split(".")[1])
        graph[name] = (found & set(mods)) - {name}
    return graph


def test_layout_small_modules_layered_imports_and_methods_apart(repo):
    "No module over 500 lines; no `_private` name imported across modules; the methods never import one another; a shallow graph."
    import ast
    for p in (repo/"c2_course_correct").glob("*.py"):
        if p.stem == "_modidx": continue
        assert len(p.read_text().splitlines()) <= 500, f"{p.name} has {len(p.read_text().splitlines())} lines: split it by what its parts do"
        for n in ast.walk(ast.parse(p.read_text())):
            if isinstance(n, ast.ImportFrom) and (n.level or (n.module or "").startswith("c2_course_correct")):
                assert not [a.name for a in n.names if a.name.startswith("_")], f"{p.name} imports a private name from {n.module}"
    graph = package_imports(repo)
    methods = {"dpo", "recovery", "derta", "backtrack"}
    for m in methods: assert not graph[m] & methods, f"{m} imports another method: {graph[m] & methods}"
    depth = {}
    def longest(m, seen=()):
        assert m not in seen, f"an import cycle: {seen + (m,)}"
        if m not in depth: depth[m] = 1 + max((longest(d, seen + (m,)) for d in graph[m]), default=0)
        return depth[m]
    # cli -> reproduce -> plan -> arena -> sweep -> helpfulness -> judge -> generate -> models -> data -> core (14 floors before)
    assert max(longest(m) for m in graph) <= 11
