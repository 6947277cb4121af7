"""The retain term searched on validation (issue 37): recovery SFT's and backtracking's arena-chosen settings and C2-Syn
DPO's own mix (its C2-Syn pairs alone), each with `retain: kl` at weights 1 and 4: the recovery methods with and
without the cross-entropy on the utility answers beside the term (`utility_loss: false`), C2-Syn DPO without utility
pairs in its preference loss (the utility answers feed the term only). Each setting trains with seed 0 and is scored on the validation split by the sweep's rule
(nbs/35_sweep.ipynb), then each method's setting is chosen by the same rule within its rows. The committed search's
rows of the same settings without the term are printed beside them.

    python bench/retain_search.py [--out outputs/default/retain-search]

The folder resumes: a killed search, rerun, goes on where it stopped (adapters are not committed; the finished
settings' scores are). The base model's validation scores are copied from the committed arena search.
"""
import argparse, shutil
from pathlib import Path

from c2_course_correct.core import load_profile, read_json
from c2_course_correct.sweep import SweepConfig, choose, run_sweep, sweep_table

RUN = Path(__file__).resolve().parents[1]/"outputs"/"default"
RECOVERY = dict(method="recovery-sft", utility_ratio=0.5, n_pairs=240)                        # arena: recovery-50
BACKTRACK = dict(method="backtrack", utility_ratio=0.5, n_pairs=240, reset_learning_rate=0.005)   # backtrack-50-lr-5e-4
# c2syn-only's 160 C2-Syn pairs (40 steps) and 160 utility answers that only the retain term reads
DPO = dict(method="c2syn-dpo", utility_ratio=0.5, n_pairs=320, utility_loss=False)


def settings() -> list[dict]:
    """The searched settings: the first retain search's three (BENCHMARKS.md: recovery-50 + kl at weights 1 and 4,
    backtracking + kl at weight 1, each with the cross-entropy on the utility answers), then the seven it left."""
    kl = lambda w, **s: {**s, "retain": "kl", "retain_weight": w}
    rows = [dict(name=f"recovery-50-kl-{w}", **kl(w, **RECOVERY)) for w in (1, 4)]
    rows += [dict(name="backtrack-50-lr-5e-4-kl-1", **kl(1, **BACKTRACK))]
    rows += [dict(name=f"recovery-50-kl-{w}-only", **kl(w, **RECOVERY, utility_loss=False)) for w in (1, 4)]
    rows += [dict(name=f"backtrack-50-lr-5e-4-kl-{w}-only", **kl(w, **BACKTRACK, utility_loss=False)) for w in (1, 4)]
    rows += [dict(name="backtrack-50-lr-5e-4-kl-4", **kl(4, **BACKTRACK))]
    return rows + [dict(name=f"c2syn-kl-{w}-only", **kl(w, **DPO)) for w in (1, 4)]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(RUN/"retain-search"))
    a = p.parse_args()
    out, profile = Path(a.out), load_profile("default")
    if not (out/"base").exists(): shutil.copytree(RUN/"arena"/"search"/"base", out/"base")
    summary = run_sweep(SweepConfig(settings=settings(), eval_items=profile["arena"]["eval_items"]), profile, out)
    print(sweep_table(summary))
    committed = {r["name"]: r for r in read_json(RUN/"arena"/"search"/"summary.json")["rows"]
                 + read_json(RUN/"sweep"/"summary.json")["rows"]}
    print("\nwithout the term (the committed searches, the same validation split and base):")
    for name in ("recovery-50", "backtrack-50-lr-5e-4", "c2syn-only"):
        r = committed[name]
        print(f"- {name}: Corr_mean change {r['corr_change']:+.3f} [{r['corr_change_ci95'][0]:+.3f}, "
              f"{r['corr_change_ci95'][1]:+.3f}], benign refusal {r['benign_refusal']:.3f}, degenerate "
              f"{r['degenerate']:.3f}, NLL change {r['nll_change']:+.1%}, qualifies {r['qualifies']}")
    method = {s["name"]: s["method"] for s in settings()}
    print("\neach method's choice by the sweep's rule within its rows:")
    for m in ("recovery-sft", "backtrack", "c2syn-dpo"):
        name, ok = choose([r for r in summary["rows"] if method[r["name"]] == m])
        print(f"- {m}: {name} ({'qualifies' if ok else 'none qualifies: the smallest total excess'})")


if __name__ == "__main__":
    main()
