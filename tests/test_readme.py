"""The README is a guide (issue 36): at most 200 lines, no table wider than 10 columns, the sections a new user needs,
and every number in it checked against the committed files: each table is a committed table or some of its columns,
and each number in the prose is one of those listed below with where it comes from."""
import re

import pytest
import yaml

from c2_course_correct.core import load_profile, read_json
from c2_course_correct.data import pku_sample_path
from c2_course_correct.sweep import BOUNDS


@pytest.fixture(scope="module")
def readme(repo) -> str:
    return (repo/"README.md").read_text()


def tables(text: str) -> list[list[list[str]]]:
    "Every Markdown table of `text`, as rows of cells (the separator row left out)."
    found, rows = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            if not re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", line): rows.append([c.strip() for c in line.strip("|").split("|")])
        elif rows: found.append(rows); rows = []
    return found


def prose(text: str) -> str:
    "The README without code blocks, inline code, tables and images: what a number in it would be a claim of."
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = "\n".join(l for l in text.splitlines() if not l.startswith(("|", "![")))
    return re.sub(r"`[^`]*`", "", text)


NUMBER = r"(?<![\w.@/-])[+-]?\d[\d,]*(?:\.\d+)?%?(?![\w/@-])"


def test_the_readme_is_a_short_guide(readme):
    assert len(readme.splitlines()) <= 200
    assert max(len(t[0]) for t in tables(readme)) <= 10
    sections = re.findall(r"^## (.+)$", readme, re.M)
    assert sections[:4] == ["Two commands on a fresh machine", "The headline result", "The method arena",
                            "Evaluate your own model"] and "Reproducing at paper scale" in sections
    own = readme[readme.index("## Evaluate your own model"):readme.index("## The stages")]
    for shown in ("--model path/to/hf-folder", "--model Qwen/Qwen2-7B-Instruct", "--backend vllm", "HF_TOKEN",
                  "pip install\n  vllm", "--judge openai", str(pku_sample_path().relative_to(pku_sample_path().parents[2]))):
        assert shown in own, shown
    assert "../shared" not in readme   # a clone has no such folder


def test_every_readme_table_is_a_committed_table_or_some_of_its_columns(repo, readme):
    committed = {f.name: tables(f.read_text())[0] for f in sorted((repo/"outputs"/"default"/"tables").glob("*.md"))}
    for table in tables(readme):
        if not re.search(NUMBER, re.sub(r"`[^`]*`", "", " ".join(map(" ".join, table)))): continue   # words and names
        head = table[0]
        matches = [name for name, full in committed.items() if set(head) <= set(full[0]) and len(full) == len(table)
                   and [[row[full[0].index(h)] for h in head] for row in full] == table]
        assert matches, f"the README table headed {head} is no committed table's columns: copy it from outputs/default/tables"


def test_every_number_in_the_readme_prose_is_checked(repo, readme):
    eval_base = read_json(repo/"outputs"/"default"/"eval-base"/"config.json")
    settings = {x.split("=")[0].strip(): x.split("=")[1].strip() for x in (repo/"settings.ini").read_text().splitlines()
                if "=" in x}
    checked = {
        "2024": "a citation's year", "2025": "a citation's year", "2407.16637": "the paper's arXiv id",
        "3.10": settings["min_python"] == "3.10",
        "2,": eval_base["samples"] == 2,                                  # b = 2
        "0.05": BOUNDS["refusal"] == BOUNDS["degenerate"] == 0.05,        # the rule's bounds
        "+5%": BOUNDS["nll"] == 0.05,
        "95%": "95%" in (repo/"outputs"/"default"/"tables"/"arena.md").read_text() or "every interval's level",
        "4.0": "CC BY-NC 4.0" in (pku_sample_path().parent/"PKU-SafeRLHF-LICENSE.md").read_text(),
        "5": __import__("transformers").__version__.startswith("5."),     # transformers 5 dropped diverse beam search
    }
    for number in re.findall(NUMBER, prose(readme)):
        assert number in checked, f"the README's {number!r} is not checked against the committed files: add it here"
        assert checked[number], number
    # the counts written as words
    arena, default = load_profile("default")["arena"], load_profile("default")
    words = {"three seeds": len(arena["seeds"]) == 3, "four depths": len(arena["prefill_k"]) == 4,
             "nine\njailbreak attacks": len(default["safety"]["attacks"]) == 9,
             "ten models": len(yaml.safe_load((repo/"configs"/"paper.yaml").read_text())["models"]) == 10}
    for phrase, holds in words.items(): assert phrase.replace("\n", " ") in prose(readme).replace("\n", " ") and holds, phrase
