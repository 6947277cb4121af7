"""`c2cc reproduce`: the smoke profile end to end through papermill, killed during DPO and resumed; the paper
profile's dry run; and the errors a user meets (conflicting folders, bad --set, a failing stage)."""
import json, re, shutil, time

import pytest, yaml

from c2_course_correct.core import read_json, read_jsonl

SECRET = "sk-test-7f3a9c2e4b1d8e6f"   # a fake key in the environment: no file of the run may contain it


@pytest.mark.slow
def test_smoke_reproduce_killed_during_dpo_resumes_and_reports(repo, run_c2cc, run_c2cc_killed, tmp_path):
    profile = tmp_path/"my-smoke.yaml"                 # profiles are files a user copies and edits
    prof = yaml.safe_load((repo/"configs"/"smoke.yaml").read_text())
    prof["safety"].update(attacks=["direct", "caesar"], benign=2)   # every attack runs in tests/test_safety.py
    profile.write_text(yaml.safe_dump(prof))
    out, tmp = (tmp_path/"run").resolve(), tmp_path/"tmp"
    tmp.mkdir()
    env = {"OPENAI_API_KEY": SECRET, "TMPDIR": str(tmp)}   # a private temporary directory: what the run leaves there shows
    args = ["reproduce", "--profile", profile, "--out", out, "--quiet", "--dtype", "auto"]   # as `make reproduce` runs it
    started = time.time()
    run_c2cc_killed(args, watch=out/"train"/"curves.jsonl", lines=1, timeout=900, env=env)
    time.sleep(3)   # the killed run's kernel sees its parent gone and exits within a second
    assert read_json(out/"reproduce.json")["stages"][4]["status"] == "running"
    assert not (out/"train"/"stats.json").exists() and not (out/"REPORT.md").exists()

    r = run_c2cc(*args, env=env, timeout=900)
    assert r.returncode == 0, r.stderr
    assert not list(tmp.iterdir()) and not list(out.rglob(".tmp")), "the run left temporary files"   # the killed one's went with the resume
    assert "[1/9] eval-base: complete for this config, skipped" in r.stdout
    assert "[4/9] synth: complete for this config, skipped" in r.stdout
    assert "[5/9] train: resuming nbs/30_dpo.ipynb" in r.stdout and "[9/9] figures: running" in r.stdout
    assert "sweep" not in r.stdout                     # optional: it runs only when named in --stages
    rec = read_json(out/"reproduce.json")
    assert [(s["name"], s["status"]) for s in rec["stages"]] == [
        ("eval-base", "ran"), ("safety-base", "ran"), ("helpfulness-base", "ran"), ("synth", "ran"), ("train", "resumed"),
        ("eval-trained", "ran"), ("safety-trained", "ran"), ("helpfulness-trained", "ran"), ("figures", "ran")]
    first = ["eval-base", "safety-base", "helpfulness-base", "synth"]
    assert [(x["ran"], x["skipped"], bool(x["finished"])) for x in rec["invocations"]] == [
        (first, [], False), (["train", "eval-trained", "safety-trained", "helpfulness-trained", "figures"], first, True)]
    assert all(s["seconds"] > 0 for s in rec["stages"]) and "(5 stages run, 4 skipped)" in r.stdout
    train = rec["stages"][4]   # the killed attempt counts too
    assert len(train["attempts"]) == 2 and train["seconds"] == round(sum(train["attempts"]), 1) and min(train["attempts"]) > 0

    # DPO resumed from its checkpoint: every step logged once, and the trained model is the one evaluated
    assert [c["step"] for c in read_jsonl(out/"train"/"curves.jsonl")] == [1, 2]
    assert read_json(out/"eval-trained"/"config.json")["model"] == str(out/"train"/"adapter")
    for kind in ("safety", "helpfulness"):
        assert read_json(out/f"{kind}-trained"/"config.json") == {**read_json(out/f"{kind}-base"/"config.json"), "model": str(out/"train"/"adapter")}
    assert read_json(out/"train"/"data.json")["utility"]["used"] == 2  # the smoke profile mixes in utility pairs

    # --dtype auto reaches every stage as a --set, and each stage records the dtype it computed in: one for the whole run
    assert sorted(rec["sets"]) == sorted(f"{s}.dtype=auto" for s in ("eval", "synth", "train", "safety", "helpfulness"))
    assert all(read_json(out/s/"config.json")["dtype"] == "auto" for s in ("eval-base", "synth", "train", "safety-base", "helpfulness-trained"))
    ran = {s: read_json(out/s/("stats.json" if s in ("synth", "train") else "summary.json"))["dtype"]
           for s in ("eval-base", "safety-base", "helpfulness-base", "synth", "train", "eval-trained", "safety-trained", "helpfulness-trained")}
    assert len(set(ran.values())) == 1 and ran["train"] in ("bfloat16", "float32"), ran
    assert f"| {ran['train']} |" in (out/"REPORT.md").read_text().split("## Environment")[1]

    # each executed notebook sits beside its results, with the parameters papermill injected
    for name, nb in [("eval-base", "10_benchmark"), ("safety-base", "40_safety"), ("helpfulness-base", "45_helpfulness"), ("synth", "20_synthesis"),
                     ("train", "30_dpo"), ("eval-trained", "10_benchmark"), ("safety-trained", "40_safety"), ("helpfulness-trained", "45_helpfulness")]:
        cells = json.loads((out/name/f"{nb}.ipynb").read_text())["cells"]
        injected = [c for c in cells if "injected-parameters" in c["metadata"].get("tags", [])]
        assert len(injected) == 1 and str(out/name) in "".join(injected[0]["source"])

    # every table and figure of the report exists and was written by this run
    arts = read_json(out/"artifacts.json")
    files = [f for a in arts["artifacts"] for f in a["files"]]
    assert {p.split("/")[0] for p in files} == {"tables", "figures", "helpfulness.json"}
    report = (out/"REPORT.md").read_text()
    for f in files:
        assert (out/f).stat().st_mtime >= started, f
        if f.endswith((".png", ".md")): assert f in report, f
    figures = {f.rsplit(".", 1)[0] for f in files if f.startswith("figures/")}
    tables = {f.rsplit(".", 1)[0] for f in files if f.startswith("tables/")}
    assert all((out/f"{x}.png").exists() and (out/f"{x}.pdf").exists() for x in figures)
    assert all((out/f"{x}.{e}").exists() for x in tables for e in ("md", "csv", "tex"))
    assert {"tables/c2eval_models", "tables/before_after", "figures/dpo_training_curves", "tables/safety_asr",
            "figures/safety_asr_plot", "tables/safety_benign", "tables/helpfulness"} <= figures | tables
    assert "benign requests refused" in (out/"tables"/"before_after.md").read_text()   # both sides in one table
    assert "sweep/summary.json not found" in read_json(out/"artifacts.json")["not_produced"]["tradeoff"]

    # the secret in the environment appears in no file of the run
    leaks = [p for p in out.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert not leaks, leaks


def test_paper_dry_run_needs_no_gpu_and_writes_nothing(run_c2cc, tmp_path):
    r = run_c2cc("reproduce", "--profile", "paper", "--out", tmp_path/"paper", "--dry-run")
    assert r.returncode == 0, r.stderr
    blocks = re.findall(r"^\[(\d+)/18\] (\S+): nbs/(\S+) -> .*\n    parameters: (.*)\n    work: (.*)\n    estimate: (.*)$", r.stdout, re.M)
    assert len(blocks) == 18 and [b[1] for b in blocks][-5:] == ["train", "eval-trained", "safety-trained", "helpfulness-trained", "figures"]
    params = {b[1]: json.loads(b[3]) for b in blocks}
    assert params["train"]["overrides"] == {"pairs": str(tmp_path/"paper"/"synth")}
    assert params["eval-trained"]["overrides"] == params["safety-trained"]["overrides"] == params["helpfulness-trained"]["overrides"] \
        == {"model": str(tmp_path/"paper"/"train"/"adapter")}
    assert "720 behaviors" in dict((b[1], b[4]) for b in blocks)["safety-base"]
    assert "750,000 pairs" in dict((b[1], b[4]) for b in blocks)["train"]
    assert re.search(r"estimate: \d+\.\d h on 1 H100 80 GB GPU", r.stdout) and "to run: about" in r.stdout
    assert not (tmp_path/"paper").exists()


@pytest.mark.parametrize("args, message", [
    (["--set", "eval.judge_api_key=sk-1"], "secrets are read from the environment"),
    (["--set", "train.lora_rank=4"], "unknown training setting(s) ['lora_rank']"),
    (["--set", "eval.n_items"], "write section.key=value"),
    (["--stages", "eval", "figures"], "unknown stage(s) ['eval']"),
    (["--profile", "no-such-profile"], "profile 'no-such-profile' not found"),
    (["--dtype", "fp16"], "--dtype 'fp16': use one of auto, float32, bfloat16"),
])
def test_reproduce_refuses_bad_options(run_c2cc, tmp_path, args, message):
    r = run_c2cc("reproduce", "--out", tmp_path/"run", "--dry-run", *(args if "--profile" in args else ["--profile", "smoke", *args]))
    assert r.returncode == 2 and message in r.stderr, r.stderr


def test_reproduce_refuses_a_folder_of_another_config(repo, run_c2cc, tmp_path):
    shutil.copytree(repo/"outputs"/"default"/"eval-base", tmp_path/"run"/"eval-base")
    r = run_c2cc("reproduce", "--profile", "smoke", "--out", tmp_path/"run", "--stages", "eval-base")
    assert r.returncode == 2 and f"{tmp_path/'run'/'eval-base'} holds a eval-base run with another config" in r.stderr, r.stderr
    assert "differs in ['k', 'max_new_tokens', 'n_items'" in r.stderr and not (tmp_path/"run"/"reproduce.json").exists()


def test_make_reproduce_s_dtype_is_not_the_committed_run_s(repo, run_c2cc, tmp_path):
    # `make reproduce` (--dtype auto) computes in bf16 where that pays; the committed rows are fp32, so their folder is refused
    shutil.copytree(repo/"outputs"/"default"/"eval-base", tmp_path/"run"/"eval-base")
    r = run_c2cc("reproduce", "--profile", "default", "--dtype", "auto", "--out", tmp_path/"run", "--stages", "eval-base", "--dry-run")
    assert r.returncode == 2 and "differs in ['dtype']" in r.stderr, r.stderr
    r = run_c2cc("reproduce", "--profile", "default", "--out", tmp_path/"run", "--stages", "eval-base", "--dry-run")
    assert r.returncode == 0 and "eval-base (complete)" in r.stdout, r.stderr


@pytest.mark.slow
def test_a_failing_stage_names_its_notebook_and_cell(run_c2cc, tmp_path):
    (tmp_path/"tmp").mkdir()
    r = run_c2cc("reproduce", "--profile", "smoke", "--out", tmp_path/"run", "--stages", "train", "--quiet", env={"TMPDIR": str(tmp_path/"tmp")})
    assert r.returncode == 2
    assert not list((tmp_path/"tmp").iterdir()) and not list((tmp_path/"run").rglob(".tmp")), "the failed run left temporary files"
    assert re.search(r"stage train failed in nbs/30_dpo.ipynb, cell \d+: ConfigError: no preference pairs at", r.stderr), r.stderr
    executed = tmp_path/"run"/"train"/"30_dpo.ipynb"
    assert str(executed) in r.stderr and "no preference pairs" in executed.read_text()
    assert read_json(tmp_path/"run"/"reproduce.json")["stages"][0]["status"] == "failed"


@pytest.mark.slow
def test_a_failing_figures_stage_leaves_no_temporary_files(repo, run_c2cc, tmp_path):
    run, tmp = tmp_path/"run", tmp_path/"tmp"
    tmp.mkdir()
    summary = read_json(repo/"outputs"/"default"/"eval-base"/"summary.json")
    (run/"eval-base").mkdir(parents=True)
    (run/"eval-base"/"summary.json").write_text(json.dumps({k: v for k, v in summary.items() if k != "corr_at_k"}))
    r = run_c2cc("reproduce", "--profile", "smoke", "--out", run, "--stages", "figures", "--quiet", env={"TMPDIR": str(tmp)})
    assert r.returncode == 2 and "stage figures failed in nbs/50_figures.ipynb" in r.stderr and "corr_at_k" in r.stderr, r.stderr
    assert not list(tmp.iterdir()) and not list(run.rglob(".tmp")), f"left: {list(tmp.iterdir())}"
