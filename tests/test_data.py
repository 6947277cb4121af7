"""Loaders on real files: the embedded PyRIT data and its labels, the PKU-SafeRLHF sample (JSONL and hub layout, old and new
schema), helpful pairs, and the three splits."""
import json, re
from collections import Counter

import datasets
import pytest

from c2_course_correct.core import DataError
from c2_course_correct.data import (PYRIT_BENIGN_FORMS, PYRIT_UNANSWERED, eval_items, load_helpful_pairs, load_pairs, load_pyrit_records,
                                    pyrit_label, pyrit_pairs_path, request_key, split_pairs)

NEW_FIELDS = dict(prompt_source="Alpaca", response_0_source="Alpaca-7B", response_1_source="Alpaca-7B",
                  response_0_harm_category={"Violence": False}, response_1_harm_category={"Violence": True},
                  response_0_severity_level=0, response_1_severity_level=2, better_response_id=0, safer_response_id=0)


def pku_rows(pku_sample):
    return [json.loads(l) for l in pku_sample.read_text().splitlines() if l.strip()]


def expected(rows):
    out = []
    for r in rows:
        if not r["is_response_0_safe"]: out.append((r["prompt"], r["response_0"]))
        elif not r["is_response_1_safe"]: out.append((r["prompt"], r["response_1"]))
    return out


def test_pku_jsonl_picks_the_unsafe_response(pku_sample):
    got = [(p.request, p.response) for p in load_pairs(str(pku_sample))]
    assert got == expected(pku_rows(pku_sample)) and len(got) > 0


@pytest.mark.parametrize("schema", ["old", "new"])
def test_pku_hub_loader_on_a_local_dataset_folder(pku_sample, tmp_path, schema):
    rows = pku_rows(pku_sample)
    if schema == "new": rows = [{**r, **NEW_FIELDS} for r in rows]
    else: rows = [{k: r[k] for k in ("prompt", "response_0", "response_1", "is_response_0_safe", "is_response_1_safe")} for r in rows]
    folder = tmp_path/"PKU-SafeRLHF"; (folder/"data").mkdir(parents=True)
    datasets.Dataset.from_list(rows).to_parquet(str(folder/"data"/"test-00000-of-00001.parquet"))
    got = load_pairs(str(folder), split="test")
    assert [(p.request, p.response) for p in got] == expected(rows)
    assert got[0].source.startswith(f"hub:{folder}/test:")


def test_new_schema_jsonl(pku_sample, tmp_path):
    f = tmp_path/"new.jsonl"
    f.write_text("".join(json.dumps({**r, **NEW_FIELDS}) + "\n" for r in pku_rows(pku_sample)))
    assert [(p.request, p.response) for p in load_pairs(str(f))] == expected(pku_rows(pku_sample))


def test_ids_are_content_hashes(pku_sample, tmp_path):
    a = load_pairs(str(pku_sample))
    f = tmp_path/"shuffled.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in pku_rows(pku_sample)[::-1]))
    b = load_pairs(str(f))
    assert {p.item_id for p in a} == {p.item_id for p in b} and len({p.item_id for p in a}) == len(a)


def test_split_is_disjoint_deterministic_and_seeded():
    pairs = load_pairs("default")
    te, va, tr = split_pairs(pairs, 50, seed=0, val_size=30)
    keys = lambda ps: {request_key(p.request) for p in ps}
    assert not keys(te) & keys(va) and not keys(te) & keys(tr) and not keys(va) & keys(tr)
    assert (len(keys(te)), len(keys(va)), len(te) + len(va) + len(tr)) == (50, 30, len(pairs))
    assert split_pairs(pairs[::-1], 50, seed=0, val_size=30) == (te, va, tr)
    assert split_pairs(pairs, 50, seed=1, val_size=30)[0] != te
    assert eval_items(pairs, 20, 50, val_size=30) == eval_items(pairs, 50, 50, val_size=30)[:20]
    assert eval_items(pairs, 30, 50, val_size=30, part="validation") == [
        p for p in va if p.item_id in {q.item_id for q in eval_items(pairs, 30, 50, val_size=30, part="validation")}]


def test_same_request_never_straddles_the_split(tmp_path):
    f = tmp_path/"dup.jsonl"
    f.write_text("".join(json.dumps({"request": f"Q{i % 5}", "response": f"A{i}"}) + "\n" for i in range(20)))
    pairs = load_pairs(str(f))
    ev, va, tr = split_pairs(pairs, 2, val_size=1)
    assert len({p.request for p in ev}) == 2 and len(ev) == 8 and len(va) == 4 and len(tr) == 8
    assert not {p.request for p in ev} & {p.request for p in tr} and not {p.request for p in va} & ({p.request for p in ev} | {p.request for p in tr})


# ---- PyRIT's labels, and the helpful pairs ---------------------------------------------------------------------

def test_pyrit_label_parser_reads_every_label_form_in_the_file():
    records = json.loads(pyrit_pairs_path().read_text())
    firsts = {r["category"].split("\n")[0].strip().split(".")[0] for r in records}
    for form in ("Harmful", "'Harmful'", '"Harmful"', "**Harmful**", "Answer: Harmful", "Not harmful", '"Not harmful"'):
        assert form in firsts, form                                   # each form the file uses is read below
    labels = [pyrit_label(r["category"], f"record {i}") for i, r in enumerate(records)]
    naive = ["not harmful" if "not harmful" in r["category"][:20].lower() else "harmful" for r in records]
    assert labels == naive and Counter(labels) == {"harmful": 283, "not harmful": 117}
    assert [p for p, label in load_pyrit_records() if label == "harmful"] == load_pairs("default")


@pytest.mark.parametrize("category", ["Harmless", "", "Unclear: maybe harmful", 3])
def test_an_unreadable_label_names_its_record(tmp_path, category):
    f = tmp_path/"shots.json"
    f.write_text(json.dumps([{"user": "Q1", "assistant": "A1", "category": "Harmful"}, {"user": "Q2", "assistant": "A2", "category": category}]))
    with pytest.raises(DataError, match=re.escape(f"{f} (record 1): cannot read a harmful / not harmful label")):
        load_pairs(str(f))


def test_helpful_pairs_are_benign_answered_and_split_apart_from_the_harmful_ones():
    helpful = load_helpful_pairs()
    records = load_pyrit_records()
    benign = [p for p, label in records if label == "not harmful" and p.request.startswith(PYRIT_BENIGN_FORMS)]
    assert {h.item_id for h in helpful} == {p.item_id for p in benign if p.request not in PYRIT_UNANSWERED}
    assert len(helpful) == 81 and not {h.request for h in helpful} & {p.request for p in load_pairs()}
    te, va, tr = split_pairs(helpful, 25, val_size=20)
    assert (len(te), len(va), len(tr)) == (25, 20, 36)
    assert not {h.request for h in te} & {h.request for h in va} and not ({h.request for h in te} | {h.request for h in va}) & {h.request for h in tr}


def test_helpful_pairs_of_pku_and_plain_files(pku_sample, tmp_path):
    rows = pku_rows(pku_sample)
    got = load_helpful_pairs(str(pku_sample))
    safe = [(r["prompt"], r["response_0"] if r["is_response_0_safe"] else r["response_1"]) for r in rows
            if r["is_response_0_safe"] or r["is_response_1_safe"]]
    assert [(h.request, h.response) for h in got] == safe and got
    f = tmp_path/"useful.jsonl"
    f.write_text(json.dumps({"request": "Tell me a joke", "response": "Why did the chicken cross the road?"}) + "\n")
    assert [(h.request, h.response) for h in load_helpful_pairs(str(f))] == [("Tell me a joke", "Why did the chicken cross the road?")]


@pytest.mark.parametrize("content, message", [
    ("", "no usable helpful pairs (the file is empty)"),
    ('{"prompt": "Q", "response_0": "a", "response_1": "b", "is_response_0_safe": false, "is_response_1_safe": false}\n',
     "no helpful (request, response) pairs: the utility data is empty"),
    ('{"request": "Q"}\n', "line 1: missing field 'response'")])
def test_bad_utility_files(tmp_path, content, message):
    f = tmp_path/"useful.jsonl"
    f.write_text(content)
    with pytest.raises(DataError, match=re.escape(message)): load_helpful_pairs(str(f))
