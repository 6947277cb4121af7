"""DPO throughput and peak memory on the default profile's C2-Syn pairs: LoRA, full fine-tuning, and LoRA reading
each pair's shared prefix once (`share_prefix`).

Each variant trains `--steps` optimizer steps with `train_dpo` (TRL's DPOTrainer, the profile's batch size,
`max_length` and answer window) in its own process, so that each peak memory is its own: the process's
maximum resident size on CPU, `torch.cuda.max_memory_allocated` on GPU. fp32 on CPU, bf16 on a GPU.
Tokens per step are the policy's tokens (chosen and rejected sequences as the collator cuts them), averaged
over the pairs the run samples. Each variant's mean training loss is printed beside its time: the shared prefix
must give the plain LoRA run's losses.

    python bench/dpo_throughput.py --quick                                  # LoRA and full, 3 steps each, ~4 min
    python bench/dpo_throughput.py --variants lora lora-shared --steps 6    # the shared prefix against the plain step
"""
import argparse, json, subprocess, sys, tempfile
from pathlib import Path


def policy_tokens(tok, pair: dict, max_length: int, window: int | None) -> int:
    "Tokens of a pair's chosen and rejected sequences after the collator's cut (`window` tokens past the parting point)."
    from c2_course_correct.dpo import diverging_token
    part = diverging_token(tok, pair) or 0
    n = 0
    for answer in (pair["chosen"], pair["rejected"]):
        ids = tok(tok.apply_chat_template(pair["prompt"] + answer, tokenize=False), add_special_tokens=False).input_ids
        n += min(len(ids), max_length, part + window if window is not None else len(ids))
    return n


VARIANTS = {"lora": dict(finetune="lora"), "full": dict(finetune="full"),
            "lora-shared": dict(finetune="lora", share_prefix=True)}


def one_variant(args) -> None:
    "Train in this process and print one JSON line of results."
    from c2_course_correct.dpo import read_pairs, train_dpo
    from c2_course_correct.train import TrainConfig
    from c2_course_correct.models import load_tokenizer
    cfg = TrainConfig.from_profile(args.profile, **VARIANTS[args.variant], max_steps=args.steps, save_steps=10_000)
    with tempfile.TemporaryDirectory() as out:
        stats = train_dpo(cfg, out, progress=False)
        data = json.loads((Path(out)/"data.json").read_text())
    pairs, tok = read_pairs(cfg.pairs_file), load_tokenizer(cfg.model)
    used = [pairs[i - 1] for i in data["lines"]]
    per_pair = sum(policy_tokens(tok, p, cfg.max_length, cfg.answer_window) for p in used) / len(used)
    tokens_per_step = per_pair * cfg.batch_size * cfg.grad_accum
    print(json.dumps(dict(variant=args.variant, steps=stats["steps"], train_loss=stats["train_loss"], seconds_per_step=stats["seconds_per_step"],
                          tokens_per_step=round(tokens_per_step), tokens_per_s=round(tokens_per_step / stats["seconds_per_step"], 1),
                          peak_memory_gib=stats["peak_memory_gib"], peak_memory_kind=stats["peak_memory_kind"],
                          device=stats["device"], dtype=stats["dtype"], batch_size=cfg.batch_size, max_length=cfg.max_length)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 steps per variant")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--profile", default="default")
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=["lora", "full"],
                    help="what to train, each in its own process; ratios are to the first")
    ap.add_argument("--variant", choices=list(VARIANTS), help="train one variant in this process (used by the benchmark itself)")
    args = ap.parse_args()
    if args.quick: args.steps = 3
    if args.variant: return one_variant(args)
    results = []
    for variant in args.variants:
        r = subprocess.run([sys.executable, __file__, "--variant", variant, "--steps", str(args.steps), "--profile", args.profile],
                           capture_output=True, text=True)
        if r.returncode: sys.exit(f"{variant} failed:\n{r.stderr[-3000:]}")
        results.append(json.loads(r.stdout.strip().splitlines()[-1]))
        x = results[-1]
        print(f"{variant}: {x['steps']} steps, {x['seconds_per_step']:.2f} s/step, {x['tokens_per_step']} tokens/step = "
              f"{x['tokens_per_s']:.1f} tokens/s; mean loss {x['train_loss']}; peak memory {x['peak_memory_gib']:.2f} GiB "
              f"({x['peak_memory_kind']}); {x['device']}, {x['dtype']}, batch {x['batch_size']}, max_length {x['max_length']}",
              flush=True)
    first = results[0]
    for x in results[1:]:
        print(f"ratio {x['variant']}/{first['variant']}: time per step {x['seconds_per_step'] / first['seconds_per_step']:.2f}, "
              f"peak memory {x['peak_memory_gib'] / first['peak_memory_gib']:.2f}")


if __name__ == "__main__":
    main()
