"""The committed validation sweep: every row is rebuilt from the committed runs of its setting, the choice follows the
rule, the default profile trains the chosen setting, and its table and Pareto figure come from its summary. No held-out
test item was used: every run of the sweep evaluated the validation split."""
import csv, sys

import pytest

from c2_course_correct.core import load_profile, read_json, read_jsonl
from c2_course_correct.sweep import SweepConfig, build_tradeoff, build_tradeoff_plot, choose, pareto_front, setting_row, sweep_table
from c2_course_correct.tables import read_run
from c2_course_correct.train import TrainConfig


@pytest.fixture(scope="module")
def sweep(repo):
    folder = repo/"outputs"/"default"/"sweep"
    return folder, read_json(folder/"summary.json")


def test_every_row_is_rebuilt_from_the_committed_runs(sweep):
    folder, summary = sweep
    cfg = SweepConfig.from_profile("default")
    assert [s["name"] for s in cfg.settings] == [r["name"] for r in summary["rows"]] and len(summary["rows"]) >= 6
    assert {r["setting"].get("utility_ratio") for r in summary["rows"]} >= {0.0, 0.25, 0.5}
    for s, row in zip(cfg.settings, summary["rows"]):
        assert setting_row(s["name"], s, folder/s["name"], folder/"base") == row, s["name"]
    assert choose(summary["rows"]) == (summary["chosen"], summary["chosen_qualifies"])


def test_only_the_validation_split_was_scored(sweep):
    folder, summary = sweep
    for run in [folder/"base", *(folder/r["name"] for r in summary["rows"])]:
        assert read_json(run/"eval-val"/"config.json")["part"] == "validation"
        assert read_json(run/"help-val"/"config.json")["part"] == "validation"
    test = {r["item_id"] for r in read_jsonl(folder.parent/"eval-base"/"continuations.jsonl")}
    val = {r["item_id"] for r in read_jsonl(folder/"base"/"eval-val"/"continuations.jsonl")}
    assert val and not test & val


def test_the_default_profile_trains_the_chosen_setting(sweep):
    _, summary = sweep
    prof = load_profile("default")
    chosen = next(s for s in SweepConfig.from_profile(prof).settings if s["name"] == summary["chosen"])
    assert SweepConfig.from_profile(prof).train_config(prof, chosen).identity() == TrainConfig.from_profile(prof).identity()


def test_table_and_figure_come_from_the_summary(repo, sweep, tmp_path):
    folder, summary = sweep
    res = read_run(folder.parent)
    table = build_tradeoff(res, tmp_path)
    with open(tmp_path/"tables"/"tradeoff.csv") as f: rows = {r["setting"].removesuffix(" (chosen)"): r for r in csv.DictReader(f)}
    for r in summary["rows"]:
        assert float(rows[r["name"]]["Corr_mean"]) == r["corr_mean"] and float(rows[r["name"]]["benign refused"]) == r["benign_refusal"]
        assert float(rows[r["name"]]["NLL change"]) == r["nll_change"]
    assert float(rows["base model"]["Corr_mean"]) == summary["base"]["corr_mean"]
    assert (tmp_path/"tables"/"tradeoff.md").read_text() == (repo/"outputs"/"default"/"tables"/"tradeoff.md").read_text()
    plot = build_tradeoff_plot(res, tmp_path)
    assert (tmp_path/"figures"/"tradeoff_plot.png").read_bytes().startswith(b"\x89PNG") and summary["chosen"] in plot.caption
    front = pareto_front(summary["rows"])
    assert all(not any(o["benign_refusal"] <= f["benign_refusal"] and o["corr_mean"] > f["corr_mean"] for o in summary["rows"]) for f in front)
    assert summary["chosen"] in sweep_table(summary)


def test_the_retain_search_rebuilds_from_its_committed_runs(repo):
    "bench/retain_search.py's committed rows: each rebuilt from its folders; the utility answers out of the loss where asked."
    sys.path.insert(0, str(repo/"bench"))
    from retain_search import settings
    folder = repo/"outputs"/"default"/"retain-search"
    summary = read_json(folder/"summary.json")
    assert [s["name"] for s in settings()] == [r["name"] for r in summary["rows"]]
    for s, row in zip(settings(), summary["rows"]):
        assert setting_row(s["name"], s, folder/s["name"], folder/"base") == row, s["name"]
        data = read_json(folder/s["name"]/"train"/"data.json")
        assert data["utility"].get("in_loss", True) is s.get("utility_loss", True), s["name"]
    assert read_json(folder/"base"/"eval-val"/"config.json")["part"] == "validation"
