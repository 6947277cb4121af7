"""Bad input ends `c2cc` with status 2 and one line naming the file, the line and the problem."""
import json

import pytest

def small(**changes):
    "Arguments of a one-item, one-path C2-Eval run, with some options changed."
    opts = {"profile": "smoke", "n-items": 1, "eval-size": 1, "k": 10, "samples": 1, "max-new-tokens": 2, **changes}
    return [x for k, v in opts.items() for x in (f"--{k}", str(v))] + ["--quiet"]


SMALL = small()


def write(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize("content, message", [
    ('{"request": "Q", "response": "A"}\n{"request": "Q2", "respo\n', "bad.jsonl, line 2: malformed JSON"),
    ('{"request": "Q"}\n', "bad.jsonl, line 1: missing field 'response'"),
    ('{"request": "   ", "response": "A"}\n', "bad.jsonl, line 1: field 'request' is empty"),
    ('{"request": "Q", "response": ["A"]}\n', "bad.jsonl, line 1: field 'response' must be a string, got list"),
    ('{"request": 7, "response": "A"}\n', "bad.jsonl, line 1: field 'request' must be a string, got int"),
    ('\n\n', "bad.jsonl: no usable harmful request/response pairs"),
    ('[1, 2]\n', "bad.jsonl, line 1: expected a JSON object, got list"),
    (json.dumps({"prompt": "Q", "response_0": "a", "response_1": "b", "is_response_0_safe": True,
                 "is_response_1_safe": True}) + "\n", "no usable harmful request/response pairs (every row has two safe responses)"),
    (json.dumps({"prompt": "Q", "response_0": "a", "response_1": "b", "is_response_0_safe": "false",
                 "is_response_1_safe": True}) + "\n", "line 1: field 'is_response_0_safe' must be true or false, got 'false'"),
    (json.dumps({"prompt": "Q", "response_0": "", "response_1": "b", "is_response_0_safe": False,
                 "is_response_1_safe": True}) + "\n", "line 1: field 'response_0' is empty"),
])
def test_bad_data(run_c2cc, tmp_path, content, message):
    data = write(tmp_path/"bad.jsonl", content)
    r = run_c2cc("eval", *SMALL, "--data", data, "--out", tmp_path/"out")
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and str(data) in r.stderr, r.stderr
    assert not (tmp_path/"out"/"continuations.jsonl").exists()


def test_missing_data_file(run_c2cc, tmp_path):
    r = run_c2cc("eval", *SMALL, "--data", tmp_path/"nope.jsonl", "--out", tmp_path/"out")
    assert r.returncode == 2 and "nope.jsonl: file not found" in r.stderr


def test_too_few_items(run_c2cc, tmp_path):
    data = write(tmp_path/"two.jsonl", "".join(json.dumps({"request": f"Q{i}", "response": "A"}) + "\n" for i in range(2)))
    r = run_c2cc("eval", *small(**{"n-items": 3, "eval-size": 5}), "--data", data, "--out", tmp_path/"out")
    assert r.returncode == 2 and "test split: n_items=3 but the test split has 2 requests; lower n_items or raise eval_size" in r.stderr, r.stderr
    r = run_c2cc("eval", *small(**{"n-items": 2, "eval-size": 1, "val-size": 3, "part": "validation"}), "--data", data, "--out", tmp_path/"val")
    assert r.returncode == 2 and "validation split: n_items=2 but the validation split has 1 requests; lower n_items or raise val_size" in r.stderr, r.stderr


@pytest.mark.parametrize("args, message", [
    (["--k", "10", "-5"], "k must be a list of positive whole numbers"),
    (["--samples", "0"], "samples must be a positive whole number"),
    (["--top-p", "1.5"], "top_p must be in (0, 1]"),
    (["--temperature", "-1"], "temperature must be >= 0"),
    (["--model", "./no/such/model"], "is neither an existing folder or .gguf file nor a hub id"),
    (["--profile", "nosuch"], "profile 'nosuch' not found"),
    (["--n-items", "20", "--eval-size", "10"], "n_items (20) exceeds eval_size (10)"),
    (["--part", "validation", "--val-size", "2"], "n_items (3) exceeds val_size (2)"),
    (["--part", "train"], "invalid choice: 'train'"),
])
def test_bad_options(run_c2cc, tmp_path, args, message):
    base = ["--profile", "smoke", "--quiet", "--out", str(tmp_path/"out")]
    r = run_c2cc("eval", *base, *args)
    assert r.returncode == 2 and message in r.stderr, r.stderr


def test_out_dir_with_another_config_is_refused(run_c2cc, tmp_path):
    out = tmp_path/"out"
    first = run_c2cc("eval", *SMALL, "--out", out)
    assert first.returncode == 0, first.stderr
    rows = (out/"continuations.jsonl").read_text()
    second = run_c2cc("eval", *small(samples=2), "--out", out)
    assert second.returncode == 2 and "holds a C2-Eval run with another config (differs in ['samples'])" in second.stderr
    assert (out/"continuations.jsonl").read_text() == rows    # nothing mixed in


def test_openai_judge_without_key(run_c2cc, tmp_path):
    r = run_c2cc("eval", *SMALL, "--judge", "openai", "--out", tmp_path/"out", env={"OPENAI_API_KEY": ""})
    assert r.returncode == 2 and "$OPENAI_API_KEY" in r.stderr, r.stderr


@pytest.mark.parametrize("row, message", [
    ({"request": "Q", "prefill": "P"}, "rows.jsonl, line 1: missing field 'continuation'"),
    ({"request": "Q", "prefill": None, "continuation": "c"}, "rows.jsonl, line 1: field 'prefill' must be a string, got NoneType"),
])
def test_bad_judge_rows(run_c2cc, tmp_path, row, message):
    src = write(tmp_path/"rows.jsonl", json.dumps(row) + "\n")
    r = run_c2cc("judge", "--in", src, "--out", tmp_path/"judged.jsonl")
    assert r.returncode == 2 and message in r.stderr, r.stderr


@pytest.mark.parametrize("command, old, new, message", [
    (["reproduce", "--dry-run"], "\nsafety:", "\nsafty:", "unknown profile section(s) ['safty'] (did you mean 'safety'?)"),
    (["synth"], "\neval:", "\nevl:", "unknown profile section(s) ['evl'] (did you mean 'eval'?)"),
    (["eval"], "  n_items: 3", "  n_item: 3", "unknown C2-Eval setting(s) ['n_item'] (did you mean 'n_items'?)"),
])
def test_a_misspelt_profile_section_or_setting_is_named(repo, run_c2cc, tmp_path, command, old, new, message):
    "A typo in a copied profile stops every command that reads it, naming the word and the one meant."
    text = (repo/"configs"/"smoke.yaml").read_text()
    assert old in text
    typo = write(tmp_path/"typo.yaml", text.replace(old, new))
    r = run_c2cc(*command, "--profile", typo, "--out", tmp_path/"out")
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path/"out").exists()


@pytest.mark.parametrize("args, message", [
    (["eval", "--profile", "smoke", "--out", "{file}"], "is a file: give a folder"),
    (["synth", "--profile", "smoke", "--out", "{file}/synth"], "is a file, so nothing can be written under it"),
    (["train", "--profile", "smoke", "--out", "{file}"], "is a file: give a folder"),
    (["helpfulness", "--profile", "smoke", "--out", "{file}/h"], "is a file, so nothing can be written under it"),
    (["compare", "outputs/default/eval-base", "outputs/default/eval-trained", "--out", "{folder}"], "is a folder: give the file"),
    (["judge", "--in", "{folder}", "--out", "{folder}/judged.jsonl"], "is a folder: give a JSON Lines file"),   # a traceback
    (["reproduce", "--profile", "smoke", "--out", "{folder}/run", "--gpus", "8"], "--gpus only prices a plan: add --dry-run"),
    (["reproduce", "--profile", "smoke", "--out", "{folder}/run", "--gpus", "0", "--dry-run"], "gpus must be a whole number >= 1, got 0"),
    # the cause, not the utility data that was never asked for
    (["train", "--profile", "smoke", "--pairs", "outputs/default/synth", "--n-pairs", "2", "--out", "{folder}/run"],
     "utility_ratio 0.25 of n_pairs 2 is no utility pair (round(0.25 x 2) = 0): give n_pairs 3 or more"),
])
def test_an_output_that_cannot_be_written_and_a_flag_that_would_do_nothing(run_c2cc, tmp_path, args, message):
    "One line and status 2, before any work, where a traceback, a silent exit 0 or the wrong cause came before."
    (tmp_path/"notes.txt").write_text("keep me")
    r = run_c2cc(*[a.format(file=tmp_path/"notes.txt", folder=tmp_path) for a in args])
    assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert (tmp_path/"notes.txt").read_text() == "keep me" and not (tmp_path/"run").exists()
