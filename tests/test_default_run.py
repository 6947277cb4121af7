"""`make eval` runs C2-Eval offline on the embedded default, prints the Corr@k table and reproduces the first
10 items of the committed outputs/default/eval-base; the committed DPO adapter reproduces the first 10 items
of outputs/default/eval-trained (each under a minute)."""
import json, re

from c2_course_correct.core import read_jsonl


def test_make_eval_reproduces_the_committed_base_continuations(repo, run_c2cc, tmp_path):
    recipe = re.search(r"^eval:.*\n\t(.+)$", (repo/"Makefile").read_text(), re.M).group(1)
    assert recipe == "$(BIN)/c2cc eval --profile default --out outputs/default/eval-base"
    # the first 10 of the 50 items (each path is seeded on its own and batching does not change a CPU result);
    # `make reproduce` reruns the whole profile, and its wall time is in outputs/default/REPORT.md
    r = run_c2cc("eval", "--profile", "default", "--n-items", 10, "--out", tmp_path/"eval-base", "--quiet", timeout=1800)
    assert r.returncode == 0, r.stderr
    assert "C2-Eval of default on 10 items, b=2, judge keyword" in r.stdout and "| mean |" in r.stdout
    assert len(re.findall(r"^\| \d0 \| \d\.\d{3} \|", r.stdout, re.M)) == 8          # Corr@10 ... Corr@80
    new = read_jsonl(tmp_path/"eval-base"/"continuations.jsonl")
    old = read_jsonl(repo/"outputs"/"default"/"eval-base"/"continuations.jsonl")
    items = {x["item_id"] for x in new}
    assert len(items) == 10 and len(new) == 10 * 8 * 2
    assert new == [x for x in old if x["item_id"] in items], \
        "the committed base continuations differ from what the code produces now (regenerate with `make eval`, " \
        "or this CPU computes differently from the one that produced them)"


def test_make_eval_trained_reproduces_the_committed_trained_continuations(repo, run_c2cc, tmp_path):
    recipe = re.search(r"^eval-trained:.*\n\t(.+)$", (repo/"Makefile").read_text(), re.M).group(1)
    assert recipe == "$(BIN)/c2cc eval --profile default --model outputs/default/train/adapter --out outputs/default/eval-trained"
    # the first 10 of the 50 items: each path is seeded on its own and batching does not change a CPU result,
    # so these rows must equal the committed ones (a fifth of the time of the whole run)
    r = run_c2cc("eval", "--profile", "default", "--model", "outputs/default/train/adapter", "--n-items", 10,
                 "--out", tmp_path/"eval-trained", "--quiet", timeout=1800)
    assert r.returncode == 0, r.stderr
    new = read_jsonl(tmp_path/"eval-trained"/"continuations.jsonl")
    old = read_jsonl(repo/"outputs"/"default"/"eval-trained"/"continuations.jsonl")
    items = {x["item_id"] for x in new}
    assert len(items) == 10 and len(new) == 10 * 8 * 2
    assert new == [x for x in old if x["item_id"] in items], \
        "the committed trained continuations differ from what the committed adapter produces now " \
        "(regenerate with `make eval-trained`, or this CPU computes differently)"
    assert json.loads((repo/"outputs"/"default"/"eval-trained"/"summary.json").read_text())["model"] == "outputs/default/train/adapter"
