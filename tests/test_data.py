"""Loaders on real files: the embedded PyRIT data, the PKU-SafeRLHF sample (JSONL and hub layout, old and new schema)."""
import json

import datasets
import pytest

from c2_course_correct.data import eval_items, load_pairs, request_key, split_pairs

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
    ev, tr = split_pairs(pairs, 100, seed=0)
    assert not {request_key(p.request) for p in ev} & {request_key(p.request) for p in tr}
    assert split_pairs(pairs[::-1], 100, seed=0) == (ev, tr)
    assert split_pairs(pairs, 100, seed=1)[0] != ev
    assert eval_items(pairs, 20, 100) == eval_items(pairs, 50, 100)[:20]


def test_same_request_never_straddles_the_split(tmp_path):
    f = tmp_path/"dup.jsonl"
    f.write_text("".join(json.dumps({"request": f"Q{i % 5}", "response": f"A{i}"}) + "\n" for i in range(20)))
    pairs = load_pairs(str(f))
    ev, tr = split_pairs(pairs, 2)
    assert len({p.request for p in ev}) == 2 and len(ev) == 8 and len(tr) == 12
    assert not {p.request for p in ev} & {p.request for p in tr}
