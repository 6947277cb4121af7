"""The method arena: the committed tables and figure rebuilt from the committed runs, byte for byte; the search ran on the
validation split only and chose each method's setting by the sweep's rule; every method has at least three settings and
every chosen setting three seeds, each trained alike and tested alike on both C2-Eval sets; the retain rows are their
method's setting with the term, tested alike; a smoke arena end to end (search, a second seed, tests, tables); bad
settings."""
from pathlib import Path

import pytest, yaml

from c2_course_correct.arena import RECOVERY, ROWS, ArenaConfig, chosen_settings, seed_config, train_folder
from c2_course_correct.arena import test_folders as folders_of   # not collected as a test
from c2_course_correct.arena_tables import (RETAIN_TESTS, arena_rows, arena_table, retain_rows, search_rows, search_table,
                                            seeds_table, table_rows)
from c2_course_correct.core import ConfigError, held_identity, load_profile, read_json, read_jsonl

REPO = Path(__file__).resolve().parents[1]
RUN = REPO/"outputs"/"default"


@pytest.fixture(scope="module")
def committed():
    return table_rows(RUN), search_rows(RUN), read_json(RUN/"arena"/"summary.json")


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
    for r in search:   # the sweep's, the arena's and the retain term's searches
        folder = RUN/r["search"]/r["name"]
        assert read_json(folder/"eval-val"/"config.json")["part"] == "validation" and read_json(folder/"help-val"/"config.json")["part"] == "validation"
        assert read_json(folder/"train"/"stats.json")["check"] == r["check"] and r["check"] is not None   # every setting checked
    assert summary["chosen"] == chosen_settings(found, cfg.settings)
    assert sum(r["chosen"] for r in search if r["search"] != "retain-search") == len(ROWS) - 1   # one a method
    assert {r["name"] for r in search if r["chosen"] and r["search"] == "retain-search"} <= {
        p.name for p in (RUN/"retain-arena").iterdir()}   # the retain search's: those tested as retain rows


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
    rows = [r for r in rows if not r.get("retain")]   # the retain rows: the test below
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


def test_each_retain_row_is_its_methods_setting_with_the_term_tested_alike(committed):
    """bench/retain_arena.py's rows (outputs/default/retain-arena): every seed trains the arena's setting of its method
    with the retain term (and, with the utility answers in the term only, the same method records as the arena's), which
    `c2cc train --method M` with the term's flags trains; is tested like the arena's seeds against the same base model,
    and sits below its method's row; each met the nine attacks on a seed."""
    from c2_course_correct.cli import method_train_config
    rows, _, summary = committed
    prof, cfg = load_profile("default"), ArenaConfig.from_profile("default")
    retain = [r for r in rows if r.get("retain")]
    assert sorted(r["setting"] for r in retain) == [r["setting"] for r in retain_rows(RUN)] == sorted(
        p.name for p in (RUN/"retain-arena").iterdir())
    assert {r["method"] for r in retain} >= {"c2syn-dpo", "recovery-sft", "backtrack"}
    base = folders_of(RUN, "base", cfg.seeds[0], cfg.seeds[0])
    for r in retain:
        above = next(i for i, a in enumerate(rows) if a["method"] == r["method"] and not a.get("retain"))
        assert all(x.get("retain") and x["method"] == r["method"] for x in rows[above + 1:rows.index(r) + 1])
        own = RUN/"retain-arena"/r["setting"]
        trained = [read_json(own/f"seed-{s}"/"train"/"config.json") for s in r["seeds"]]
        assert r["seeds"] == cfg.seeds and [t["seed"] for t in trained] == cfg.seeds and r["attack_seeds"]
        plain = seed_config(cfg, prof, r["method"], summary["chosen"], cfg.seeds[0]).identity()
        for t in trained:   # settings added later are in config.json only when not at their default
            changed = {k for k in (set(plain) | set(t)) - {"rows_dtype"} if t.get(k) != plain.get(k)}
            assert t["retain"] == r["retain"]["kind"] == "kl" and t.get("retain_weight", 1.0) == r["retain"]["weight"] > 0
            assert changed <= {"seed", "retain", "retain_weight", "utility_loss", "utility_ratio", "n_pairs"}, changed
            if changed & {"utility_ratio", "n_pairs"}:   # utility answers added for the term alone
                assert t["utility_loss"] is False and t["n_pairs"] * (1 - t["utility_ratio"]) == plain["n_pairs"] * (
                    1 - plain["utility_ratio"])
        # one command trains it: `c2cc train --profile default --method M` with the term's flags (`--retain kl ...`)
        first = {k: v for k, v in trained[0].items() if k != "rows_dtype"}
        over = {k: v for k, v in first.items() if v != plain.get(k)}
        assert method_train_config("default", {"method": r["method"], **over})[0].identity() == first, r["setting"]
        for kind in RETAIN_TESTS:
            want = {k: v for k, v in read_json(base[kind]/"config.json").items() if k != "model"}
            for s in r["seeds"]:
                got = read_json(own/f"seed-{s}"/kind/"config.json")
                assert {k: v for k, v in got.items() if k != "model"} == want, (r["setting"], s, kind)
                assert Path(got["model"]).parts[-4:] == (r["setting"], f"seed-{s}", "train", "adapter")   # its own model


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
