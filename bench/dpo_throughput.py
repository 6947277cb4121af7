"""DPO throughput and peak memory, LoRA against full fine-tuning, on the default profile's C2-Syn pairs.

Each method trains `--steps` optimizer steps with `train_dpo` (TRL's DPOTrainer, the profile's batch size,
`max_length` and answer window) in its own process, so that each peak memory is its own: the process's
maximum resident size on CPU, `torch.cuda.max_memory_allocated` on GPU. fp32 on CPU, bf16 on a GPU.
Tokens per step are the policy's tokens (chosen and rejected sequences as the collator cuts them), averaged
over the pairs the run samples.

    python bench/dpo_throughput.py --quick        # 3 steps per method, about 4 minutes on 2 CPU cores
    python bench/dpo_throughput.py --steps 10
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


def one_method(args) -> None:
    "Train in this process and print one JSON line of results."
    from c2_course_correct.dpo import read_pairs, train_dpo
    from c2_course_correct.train import TrainConfig
    from c2_course_correct.models import load_tokenizer
    cfg = TrainConfig.from_profile(args.profile, method=args.method, max_steps=args.steps, save_steps=10_000)
    with tempfile.TemporaryDirectory() as out:
        stats = train_dpo(cfg, out, progress=False)
        data = json.loads((Path(out)/"data.json").read_text())
    pairs, tok = read_pairs(cfg.pairs_file), load_tokenizer(cfg.model)
    used = [pairs[i - 1] for i in data["lines"]]
    per_pair = sum(policy_tokens(tok, p, cfg.max_length, cfg.answer_window) for p in used) / len(used)
    tokens_per_step = per_pair * cfg.batch_size * cfg.grad_accum
    print(json.dumps(dict(method=args.method, steps=stats["steps"], seconds_per_step=stats["seconds_per_step"],
                          tokens_per_step=round(tokens_per_step), tokens_per_s=round(tokens_per_step / stats["seconds_per_step"], 1),
                          peak_memory_gib=stats["peak_memory_gib"], peak_memory_kind=stats["peak_memory_kind"],
                          device=stats["device"], dtype=stats["dtype"], batch_size=cfg.batch_size, max_length=cfg.max_length)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 steps per method")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--profile", default="default")
    ap.add_argument("--method", choices=["lora", "full"], help="run one method in this process (used by the benchmark itself)")
    args = ap.parse_args()
    if args.quick: args.steps = 3
    if args.method: return one_method(args)
    results = []
    for method in ("lora", "full"):
        r = subprocess.run([sys.executable, __file__, "--method", method, "--steps", str(args.steps), "--profile", args.profile],
                           capture_output=True, text=True)
        if r.returncode: sys.exit(f"{method} failed:\n{r.stderr[-3000:]}")
        results.append(json.loads(r.stdout.strip().splitlines()[-1]))
        x = results[-1]
        print(f"{method}: {x['steps']} steps, {x['seconds_per_step']:.2f} s/step, {x['tokens_per_step']} tokens/step = "
              f"{x['tokens_per_s']:.1f} tokens/s; peak memory {x['peak_memory_gib']:.2f} GiB ({x['peak_memory_kind']}); "
              f"{x['device']}, {x['dtype']}, batch {x['batch_size']}, max_length {x['max_length']}", flush=True)
    lora, full = results
    print(f"ratio full/lora: time per step {full['seconds_per_step'] / lora['seconds_per_step']:.2f}, "
          f"peak memory {full['peak_memory_gib'] / lora['peak_memory_gib']:.2f}")


if __name__ == "__main__":
    main()
