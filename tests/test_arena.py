"""The method arena: the committed tables and figure rebuilt from the committed runs, byte for byte; the search ran on the
validation split only and chose each method's setting by the sweep's rule; every method has at least three settings and
every chosen setting three seeds, each trained alike and tested alike on both C2-Eval sets; a smoke arena end to end
(search, a second seed, tests, tables); bad settings."""
from pathlib import Path

import pytest, yaml

from c2_course_correct.arena import (RECOVERY, ROWS, ArenaConfig, arena_rows, arena_table, chosen_settings, search_rows, search_table,
                                     seed_config, seeds_table, train_folder)
from c2_course_correct.arena import test_folders as folders_of   # not collected as a test
from c2_course_correct.core import ConfigError, held_identity, load_profile, read_json, read_jsonl

REPO = Path(__file__).resolve().parents[1]
RUN = REPO/"outputs"/"default"


@pytest.fixture(scope="module")
def committed():
    return arena_rows(RUN), search_rows(RUN), read_json(RUN/"arena"/"summary.json")


def test_the_committed_tables_are_rebuilt_from_the_committed_runs(committed):
    rows, search, _ = committed
    for name, (md, text) in [("arena", arena_table(rows)), ("arena_seeds", seeds_table(rows)), ("arena_search", search_table(search))]:
        assert md == (RUN/"tables"/f"{name}.md").read_text() and text == (RUN/"tables"/f"{name}.csv").read_text(), name
    assert (RUN/"figures"/"arena.png").exists() and (RUN/"figures"/"arena.pdf").exists()


def test_the_search_saw_the_validation_split_only_and_chose_by_the_rule(committed):
    _, search, summary = committed
    cfg = ArenaConfig.from_profile("default")
    found = read_json(RUN/"arena"/"search"/"summary.json")
    assert [r["name"] for r in found["rows"]] == [s["name"] for s in cfg.settings]
    assert all(sum(s["method"] == m for s in cfg.settings) >= 3 for m in RECOVERY)
    for r in search:
        folder = (RUN/"sweep" if r["method"] == "c2syn-dpo" else RUN/"arena"/"search")/r["name"]
        assert read_json(folder/"eval-val"/"config.json")["part"] == "validation" and read_json(folder/"help-val"/"config.json")["part"] == "validation"
        assert read_json(folder/"train"/"stats.json")["check"] == r["check"] and r["check"] is not None   # every setting checked
    assert summary["chosen"] == chosen_settings(found, cfg.settings)
    assert sum(r["chosen"] for r in search) == len(ROWS) - 1   # one setting per method, the DPO one by the profile's sweep


def test_every_chosen_setting_has_every_seed_trained_alike(committed):
    rows, _, summary = committed
    prof, cfg = load_profile("default"), ArenaConfig.from_profile("default")
    assert summary["seeds"] == cfg.seeds
    for row in ROWS[1:]:
        trained = [read_json(train_folder(RUN, row, summary["chosen"], s, cfg.seeds[0])/"config.json") for s in cfg.seeds]
        assert [t["seed"] for t in trained] == cfg.seeds
        assert all({**t, "seed": 0} == {**trained[0], "seed": 0} for t in trained)                  # the same setting, another seed
        assert all({k: v for k, v in t.items() if k != "rows_dtype"} == seed_config(cfg, prof, row, summary["chosen"], s).identity()
                   for t, s in zip(trained, cfg.seeds))
        assert all(t["rows_dtype"] == read_json(train_folder(RUN, row, summary["chosen"], s, cfg.seeds[0])/"stats.json")["dtype"]
                   for t, s in zip(trained, cfg.seeds))   # the dtype the model trained in
    for r in rows[1:]:   # the table's numbers are those of the seeds' own runs
        assert r["corr_mean"]["per_seed"] == [s["corr_mean"] for s in r["seed_records"]] and len(r["seed_records"]) == len(cfg.seeds)
        assert abs(r["corr_mean"]["mean"] - sum(r["corr_mean"]["per_seed"]) / len(cfg.seeds)) < 1e-12
        assert r["corr_mean"]["ci95"][0] <= r["corr_mean"]["mean"] <= r["corr_mean"]["ci95"][1]


def test_every_row_and_seed_was_tested_alike(committed):
    rows, _, summary = committed
    cfg = ArenaConfig.from_profile("default")
    first = cfg.seeds[0]
    folders = [folders_of(RUN, r["method"], s["seed"], first) for r in rows for s in r["seed_records"]]
    for kind in ("eval", "twins", "prefill", "helpfulness"):
        configs = [read_json(f[kind]/"config.json") for f in folders]
        assert all({k: v for k, v in c.items() if k != "model"} == {k: v for k, v in configs[0].items() if k != "model"} for c in configs), kind
    twins = read_json(folders[0]["twins"]/"config.json")
    assert twins["data"] == "rho-harmful" and twins["k"] == cfg.twins_k and twins["n_items"] == cfg.twins_items
    assert read_json(folders[0]["prefill"]/"config.json")["unit"] == "tokens"
    # the base model and C2-Syn DPO's first seed (the default run's own), and every row's seeds in safety_seeds
    attacked = {(row, first) for row in ROWS[:2]} | {(row, s) for row in ROWS[1:] for s in cfg.safety_seeds}
    safety = [read_json(folders_of(RUN, row, s, first)["safety"]/"config.json") for row, s in sorted(attacked)]
    for r in rows:
        assert r["attack_seeds"] == sorted(s for row, s in attacked if row == r["method"])
        met = [x["attack_asr"] for x in r["seed_records"] if x["attack_asr"]]
        assert len(met) == len(r["attack_seeds"]) and all(abs(r["attack_asr"][a] - sum(m[a] for m in met) / len(met)) < 1e-12 for a in met[0])
    assert all({k: v for k, v in s.items() if k != "model"} == {k: v for k, v in safety[0].items() if k != "model"} for s in safety)
    items = {x["item_id"] for x in read_jsonl(folders[0]["twins"]/"continuations.jsonl")}
    assert len(items) == cfg.twins_items and not items & {x["item_id"] for x in read_jsonl(RUN/"eval-base"/"continuations.jsonl")}


@pytest.mark.slow
def test_a_smoke_arena_end_to_end(run_c2cc, tmp_path):
    """The smoke default run's stages the arena needs (trained on the committed C2-Syn data, which C2-Syn's own tests
    check), then an arena of one setting per method and two seeds: search, seeds, tests, tables."""
    run, synth = tmp_path/"run", REPO/"outputs"/"default"/"synth"
    for args in (["eval", "--out", run/"eval-base"], ["helpfulness", "--out", run/"helpfulness-base"],
                 ["train", "--pairs", synth, "--out", run/"train"]):
        r = run_c2cc(args[0], "--profile", "smoke", *args[1:], "--quiet")
        assert r.returncode == 0, r.stderr
    prof = yaml.safe_load((REPO/"configs"/"smoke.yaml").read_text())
    prof["train"]["pairs"] = str(synth)
    prof["arena"] = dict(eval_items=1, settings=[dict(name="recovery", method="recovery-sft"), dict(name="derta", method="derta"),
                                                 dict(name="backtrack", method="backtrack", reset_learning_rate=0.005)],
                         prefill_k=[5], seeds=[0, 1], twins_items=1, twins_k=[10], safety_seeds=[])
    (tmp_path/"p.yaml").write_text(yaml.safe_dump(prof))
    r = run_c2cc("arena", "--profile", tmp_path/"p.yaml", "--run", run, "--quiet", timeout=1800)
    assert r.returncode == 0, r.stderr
    summary = read_json(run/"arena"/"summary.json")
    assert summary["chosen"] == {m: {"recovery-sft": "recovery", "derta": "derta", "backtrack": "backtrack"}[m] for m in RECOVERY}
    assert all(set(summary["models"][row]) == {"0", "1"} for row in ROWS[1:])
    assert read_json(run/"arena"/"c2syn-dpo"/"seed-1"/"train"/"config.json")["seed"] == 1
    assert "check" in read_json(run/"arena"/"backtrack"/"seed-1"/"train"/"stats.json")
    rows = arena_rows(run)
    assert [r["method"] for r in rows] == list(ROWS) and all(len(r["seed_records"]) == 2 for r in rows[1:])
    assert (run/"tables"/"arena.md").read_text() == arena_table(rows)[0] and "| c2syn-dpo |" in r.stdout
    assert (run/"tables"/"arena_seeds.md").exists() and (run/"tables"/"arena_search.md").exists() and (run/"figures"/"arena.png").exists()
    again = run_c2cc("arena", "--profile", tmp_path/"p.yaml", "--run", run, "--quiet")   # finished: everything is read back, nothing rerun
    assert again.returncode == 0 and again.stdout == r.stdout


def test_bad_arena_settings(run_c2cc, tmp_path):
    p = tmp_path/"p.yaml"
    p.write_text((REPO/"configs"/"smoke.yaml").read_text())
    r = run_c2cc("arena", "--profile", p, "--run", tmp_path)
    assert r.returncode == 2 and "has no 'arena' section" in r.stderr, r.stderr
    with pytest.raises(ConfigError, match="has no setting for"):
        ArenaConfig(settings=[{"name": "only-derta", "method": "derta"}])
    settings = ArenaConfig.from_profile("default").settings
    with pytest.raises(ConfigError, match="seeds must be a non-empty list of distinct"): ArenaConfig(settings=settings, seeds=[1, 1])
    with pytest.raises(ConfigError, match="twins_k must be a non-empty list"): ArenaConfig(settings=settings, twins_k=[])


def test_readme_shows_the_committed_arena_table():
    "Ten of its columns: tests/test_readme.py checks that each README table is a committed table's columns."
    head = "| method | setting | change vs base (paired) | broke off (C2-Eval) | prefill ASR @10 tok | ASR direct | benign refused |"
    assert head in (REPO/"README.md").read_text()


def test_one_command_trains_each_method_at_its_chosen_setting(committed):
    """`c2cc train --profile default --method M` trains the setting the arena chose for M: the profile records the
    search's choices, and the config is the one the search trained (before: the train section, C2-Syn DPO's, which
    backtracking refused for want of utility data)."""
    from c2_course_correct.cli import method_train_config
    _, _, summary = committed
    assert ArenaConfig.from_profile("default").chosen == summary["chosen"]
    for method, name in summary["chosen"].items():
        cfg, setting = method_train_config("default", {"method": method})
        assert setting == name and cfg.method == method
        assert cfg.identity() == held_identity(RUN/"arena"/"search"/name/"train"), method
    assert method_train_config("default", {"method": "c2syn-dpo"})[1] is None   # the train section's own method
    with pytest.raises(ConfigError, match=r"arena chosen \{'derta': 'recovery-50'\}: each must name one of that method's"):
        ArenaConfig(settings=ArenaConfig.from_profile("default").settings, chosen={"derta": "recovery-50"})
