"""The method arena: the committed table and figure rebuilt from the committed runs, byte for byte; the search ran on the
validation split only and chose each method's setting by the sweep's rule; every row was tested alike; bad settings."""
from pathlib import Path

import pytest

from c2_course_correct.arena import RECOVERY, ArenaConfig, arena_rows, arena_table, chosen_settings
from c2_course_correct.core import ConfigError, load_profile, read_json

REPO = Path(__file__).resolve().parents[1]
RUN = REPO/"outputs"/"default"


def test_the_committed_table_is_rebuilt_from_the_committed_runs():
    md, text = arena_table(arena_rows(RUN))
    assert md == (RUN/"tables"/"arena.md").read_text() and text == (RUN/"tables"/"arena.csv").read_text()
    assert (RUN/"figures"/"arena.png").exists() and (RUN/"figures"/"arena.pdf").exists()


def test_the_search_saw_the_validation_split_only():
    cfg = ArenaConfig.from_profile("default")
    search = read_json(RUN/"arena"/"search"/"summary.json")
    assert [r["name"] for r in search["rows"]] == [s["name"] for s in cfg.settings]
    for s in cfg.settings:
        ev = read_json(RUN/"arena"/"search"/s["name"]/"eval-val"/"config.json")
        hp = read_json(RUN/"arena"/"search"/s["name"]/"help-val"/"config.json")
        assert ev["part"] == "validation" and hp["part"] == "validation"
        assert read_json(RUN/"arena"/"search"/s["name"]/"train"/"config.json")["method"] == s["method"]
    assert read_json(RUN/"arena"/"summary.json")["chosen"] == chosen_settings(search, cfg.settings)


def test_every_row_was_tested_alike():
    "Same C2-Eval, safety and helpfulness settings for every row but the model; the same training budget for every method."
    prof = load_profile("default")
    evals = [read_json(RUN/f)["config"] for f in ["eval-base/summary.json", "eval-trained/summary.json"]
             + [f"arena/{m}/eval/summary.json" for m in RECOVERY]]
    assert all({k: v for k, v in e.items() if k != "model"} == {k: v for k, v in evals[0].items() if k != "model"} for e in evals)
    safety = [read_json(RUN/f/"config.json") for f in ["safety-base", "safety-trained"] + [f"arena/{m}/safety" for m in RECOVERY]]
    assert all({k: v for k, v in s.items() if k != "model"} == {k: v for k, v in safety[0].items() if k != "model"} for s in safety)
    prefill = [read_json(RUN/"arena"/name/"prefill"/"config.json") for name in ("base", "c2syn-dpo", *RECOVERY)]
    assert all(p["unit"] == "tokens" and p["k"] == prof["arena"]["prefill_k"] for p in prefill)
    rows = arena_rows(RUN)
    assert len({r["steps"] for r in rows if r["method"] != "base"}) == 1   # the same number of optimizer steps


def test_bad_arena_settings(run_c2cc, tmp_path):
    p = tmp_path/"p.yaml"
    p.write_text((REPO/"configs"/"smoke.yaml").read_text())
    r = run_c2cc("arena", "--profile", p, "--run", tmp_path)
    assert r.returncode == 2 and "has no 'arena' section" in r.stderr, r.stderr
    with pytest.raises(ConfigError, match="has no setting for"):
        ArenaConfig(settings=[{"name": "only-derta", "method": "derta"}])


def test_readme_shows_the_committed_arena_table():
    assert (RUN/"tables"/"arena.md").read_text().strip() in (REPO/"README.md").read_text()
