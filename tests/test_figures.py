"""The figures stage draws every table and figure and writes REPORT.md from a run's result files only: from the
committed default run, from a run of C2-Eval alone, and refusing input it cannot read with a message that says why."""
import csv, hashlib, json, re, shutil

import pytest

from c2_course_correct.core import C2Error, DataError, read_json
from c2_course_correct.figures import make_report

TABLES = ["c2eval_models", "before_after", "case_studies", "c2syn_drops", "c2syn_responses", "safety_asr", "safety_asr_by_category",
          "safety_benign", "helpfulness", "tradeoff"]
FIGURES = ["corr_at_k", "course_correction_example", "c2syn_ranked_responses", "c2syn_cut_positions", "dpo_training_curves",
           "safety_asr_plot", "tradeoff_plot"]


@pytest.fixture(scope="module")
def default_report(repo, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return make_report(repo/"outputs"/"default", out), out


def csv_rows(path, key):
    with open(path, newline="") as f: return {r[key]: r for r in csv.DictReader(f)}


def test_default_run_gives_every_table_and_figure(default_report):
    _, out = default_report
    for name in TABLES:
        for ext in ("md", "csv", "tex"): assert (out/"tables"/f"{name}.{ext}").stat().st_size > 0, f"{name}.{ext}"
    for name in FIGURES:
        assert (out/"figures"/f"{name}.png").read_bytes().startswith(b"\x89PNG")
        pdf = (out/"figures"/f"{name}.pdf").read_bytes()
        assert pdf.startswith(b"%PDF") and b"/Subtype /Image" not in pdf, f"{name}.pdf is not purely vector"
    provenance = read_json(out/"artifacts.json")
    assert {a["name"] for a in provenance["artifacts"]} == set(TABLES + FIGURES + ["arena"])
    assert list(provenance["not_produced"]) == ["corr_mean_by_size"]   # the default run evaluates one model size
    arena = next(a for a in provenance["artifacts"] if a["name"] == "arena")   # the arena's table (md, csv) and figure
    assert sorted(arena["files"]) == ["figures/arena.pdf", "figures/arena.png", "tables/arena.csv", "tables/arena.md", "tables/arena_search.csv",
                                      "tables/arena_search.md", "tables/arena_seeds.csv", "tables/arena_seeds.md"]
    assert b"/Subtype /Image" not in (out/"figures"/"arena.pdf").read_bytes() and b"/CreationDate" not in (out/"figures"/"arena.pdf").read_bytes()


def test_csv_numbers_are_the_summaries(repo, default_report):
    _, out = default_report
    run = repo/"outputs"/"default"
    models = csv_rows(out/"tables"/"c2eval_models.csv", "run")
    assert set(models) == {"eval-base", "eval-trained"}
    for name, row in models.items():
        s = read_json(run/name/"summary.json")
        assert [float(row[f"Corr@{k}"]) for k in s["corr_at_k"]] == list(s["corr_at_k"].values())
        assert float(row["Corr_mean"]) == s["corr_mean"]
        assert [float(row["Corr_mean 95% CI low"]), float(row["Corr_mean 95% CI high"])] == s["corr_mean_ci95"]
        assert int(row["items"]) == s["n_items"] and int(row["samples"]) == s["samples"]
    before_after = csv_rows(out/"tables"/"before_after.csv", "metric")["Corr_mean"]
    committed = read_json(run/"before-after.json")   # the DPO stage's own comparison of the same two runs
    assert [float(before_after["base"]), float(before_after["trained"])] == committed["corr_mean"]
    assert float(before_after["change"]) == committed["corr_mean_change"]["change"]
    assert [float(before_after["change 95% CI (paired) low"]), float(before_after["change 95% CI (paired) high"])] == committed["corr_mean_change"]["ci95"]
    drops = list(csv.DictReader(open(out/"tables"/"c2syn_drops.csv")))
    stats = read_json(run/"synth"/"stats.json")
    assert {r["step"]: int(r["requests"]) for r in drops}["preference pairs"] == stats["pairs"]


def repo_path():
    from pathlib import Path
    return Path(__file__).resolve().parents[1]


def test_helpfulness_rows_join_the_before_after_table(repo, default_report):
    _, out = default_report
    rows = csv_rows(out/"tables"/"before_after.csv", "metric")
    committed = read_json(repo/"outputs"/"default"/"helpfulness.json")
    refused = next(v for k, v in rows.items() if k.startswith("benign requests refused"))
    assert [float(refused["base"]), float(refused["trained"])] == [committed["refusal"]["before"]["rate"], committed["refusal"]["after"]["rate"]]
    nll = next(v for k, v in rows.items() if k.startswith("NLL per token"))
    assert float(nll["change"]) == committed["nll"]["relative_change"]
    assert read_json(out/"helpfulness.json") == committed


def test_report_names_each_file_and_each_exists(default_report):
    report, out = default_report
    text = report.read_text()
    provenance = read_json(out/"artifacts.json")
    linked = set(re.findall(r"\]\(([^)]+)\)", text))
    produced = {f for a in provenance["artifacts"] for f in a["files"]}
    assert linked == produced and all((out/f).is_file() for f in linked)
    for f, record in provenance["files"].items():
        assert hashlib.sha256((out/f).read_bytes()).hexdigest() == record["sha256"] and (out/f).stat().st_size == record["bytes"]
    assert set(provenance["files"]) == produced | {"REPORT.md"}
    headline = text.split("## Headline")[1].split("\n## ")[0]
    base, trained = (read_json(repo_path()/"outputs"/"default"/d/"summary.json") for d in ("eval-base", "eval-trained"))
    show = lambda s: f"{s['corr_mean']:.3f} [{s['corr_mean_ci95'][0]:.3f}, {s['corr_mean_ci95'][1]:.3f}]"
    assert f"{show(base)} (base) to {show(trained)} (trained)" in headline
    assert "benign requests refused" in headline                     # the other side, in the same sentence
    for section in ("## The paper's tables and figures", "## Configuration", "## Environment", "## Timings", "## Not produced"):
        assert section in text
    assert "Jailbreak attack success" in text and "tables/safety_asr.md" in text and "lm-evaluation-harness benchmarks" in text


def test_run_of_c2eval_alone_reports_the_rest_as_not_produced(repo, tmp_path):
    run = tmp_path/"eval-only"
    shutil.copytree(repo/"outputs"/"default"/"eval-base", run/"eval-base")
    report = make_report(run)                       # out defaults to the run folder
    assert report == run/"REPORT.md"
    for ext in ("md", "csv", "tex"): assert (run/"tables"/f"c2eval_models.{ext}").exists()
    assert (run/"figures"/"corr_at_k.pdf").exists()
    missing = read_json(run/"artifacts.json")["not_produced"]
    for name in ("c2syn_ranked_responses", "c2syn_cut_positions", "c2syn_drops", "c2syn_responses"):
        assert "synth/" in missing[name] and "not run" in missing[name], missing[name]
    assert "train/curves.jsonl" in missing["dpo_training_curves"]
    assert "eval-trained/summary.json" in missing["before_after"] and "eval-trained" in missing["case_studies"]
    for name in ("safety_asr", "safety_asr_plot", "safety_asr_by_category", "safety_benign"):
        assert "safety-base/summary.json not found" in missing[name], missing[name]
    assert "helpfulness-base/summary.json not found" in missing["helpfulness"]
    assert "sweep/summary.json not found" in missing["tradeoff"] and "sweep/summary.json not found" in missing["tradeoff_plot"]
    text = report.read_text()
    assert all(f"**{name}**" in text for name in missing)
    assert not (run/"tables"/"before_after.md").exists() and not (run/"figures"/"dpo_training_curves.png").exists()


def test_empty_folder_is_refused_naming_it(tmp_path):
    with pytest.raises(C2Error, match=re.escape(str(tmp_path))) as e: make_report(tmp_path)
    assert "eval-*/summary.json" in str(e.value)


def test_the_committed_run_is_never_rebuilt_in_place_by_default():
    with pytest.raises(C2Error, match="give `out`"): make_report(None)


def test_summary_without_corr_at_k_is_refused_naming_the_file(repo, tmp_path):
    shutil.copytree(repo/"outputs"/"default"/"eval-base", tmp_path/"eval-base")
    summary = read_json(tmp_path/"eval-base"/"summary.json")
    del summary["corr_at_k"]
    (tmp_path/"eval-base"/"summary.json").write_text(json.dumps(summary))
    with pytest.raises(DataError, match="corr_at_k") as e: make_report(tmp_path, tmp_path/"report")
    assert e.value.path == str(tmp_path/"eval-base"/"summary.json")
    assert not (tmp_path/"report"/"REPORT.md").exists()


def test_every_committed_table_is_regenerated_from_the_committed_runs(repo, default_report):
    _, out = default_report
    committed = repo/"outputs"/"default"/"tables"
    made = sorted(p.name for p in (out/"tables").iterdir())
    assert made == sorted(p.name for p in committed.iterdir())
    for name in made:
        assert (out/"tables"/name).read_text() == (committed/name).read_text(), f"tables/{name} differs from what the committed runs give"


def test_every_committed_figure_and_the_report_are_regenerated_from_the_committed_runs(repo, default_report):
    """Byte for byte: each figure (PNG and PDF, no creation date in either), and REPORT.md but for what depends on when it was
    built: its time stamp, and the figures stage's own row in the timings (the committed report was written while that stage ran)."""
    report, out = default_report
    committed = repo/"outputs"/"default"
    made = sorted(p.name for p in (out/"figures").iterdir())
    assert made == sorted(p.name for p in (committed/"figures").iterdir())
    for name in made:
        assert (out/"figures"/name).read_bytes() == (committed/"figures"/name).read_bytes(), f"figures/{name} differs from what the committed runs give"
    when = re.compile(r"report built \S+|^\| (figures|total) \|.*$|^\| c2cc reproduce .*--stages.*$", re.M)
    assert when.sub("", report.read_text()) == when.sub("", (committed/"REPORT.md").read_text())
