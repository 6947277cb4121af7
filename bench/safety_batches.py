"""The safety stage's model-free prompts answered in row-order chunks (as before length batches) and in length batches.

The default profile's model-free attack prompts (direct, GCG transfer suffixes, DAN-style templates, the three
ciphers: 160 prompts of 36 to 1,242 tokens) are answered greedily, as `safety.run_safety` answers them, once in chunks
of `batch_size` in the order the rows are planned and once in `generate.length_batches`. Prints, for each: the prompt
tokens the hf backend encodes and the cached positions each decoding step attends over (counted with the backend's own
plan: shared prefixes, its length groups for encoding, its tail block), and the seconds; then whether every row is
the same in both (it must be: a row is fixed by its prompt, whichever batch it is in).

    python bench/safety_batches.py [--model default] [--behaviors 20]    # about 10 minutes on 2 CPU cores (fp32)
"""
import argparse, time


def plan_cost(ids: list[list[int]], batches: list[list[int]], max_prefill_tokens: int) -> tuple[int, int]:
    "Prompt tokens encoded and cached positions attended per decoding step, by the hf backend's plan for `batches`."
    from c2_course_correct.generate import _length_chunks, _share_plan
    encoded = attended = 0
    for b in batches:
        seqs = [ids[i] for i in b]
        roots, _, shared = _share_plan(seqs)
        for chunk in _length_chunks([len(seqs[r]) - 1 for r in roots], max_prefill_tokens):
            encoded += len(chunk) * max(len(seqs[roots[j]]) - 1 for j in chunk)
        tail = max(len(x) - shared[i] for i, x in enumerate(seqs))
        encoded += len(b) * tail
        attended += len(b) * (max(max(0, len(x) - tail) for x in seqs) + tail)
    return encoded, attended


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--behaviors", type=int, help="behaviors (default: the profile's n_behaviors)")
    ap.add_argument("--dtype", default=None, help="auto, float32 or bfloat16 (default: the profile's, fp32 on CPU)")
    args = ap.parse_args()
    from c2_course_correct.attacks import load_behaviors, static_prompts
    from c2_course_correct.generate import HFBackend, length_batches, prompt_lengths
    from c2_course_correct.models import chat_prompt
    from c2_course_correct.safety import STATIC_ATTACKS, SafetyConfig, answer
    cfg = SafetyConfig.from_profile("default", model=args.model, dtype=args.dtype,
                                    **({"n_behaviors": args.behaviors} if args.behaviors else {}))
    hf = HFBackend(cfg.model, dtype=cfg.dtype, batch_size=cfg.batch_size)
    behaviors = load_behaviors(cfg.behaviors, cfg.n_behaviors, cfg.seed)
    prompts = [p for a in STATIC_ATTACKS for b in behaviors
               for p in static_prompts(a, b, cfg.transfer_suffixes if a == "gcg-transfer" else cfg.templates, cfg.seed)]
    texts = [chat_prompt(hf.tokenizer, p.user, system=p.system) for p in prompts]
    ids = hf.tokenizer(texts, add_special_tokens=False).input_ids
    lengths = prompt_lengths(hf.tokenizer, texts)
    print(f"model {cfg.model} ({hf.dtype}), {len(prompts)} model-free prompts of {min(lengths)}-{max(lengths)} tokens, "
          f"{sum(lengths)} real tokens, batch {cfg.batch_size}, {cfg.greedy.max_new_tokens} new tokens, greedy", flush=True)
    ways = dict(row_order=[list(range(s, min(s + cfg.batch_size, len(prompts))))
                           for s in range(0, len(prompts), cfg.batch_size)],
                length_batches=length_batches(lengths, cfg.batch_size))
    rows = {}
    for name, batches in ways.items():
        encoded, attended = plan_cost(ids, batches, hf.max_prefill_tokens)
        t = time.perf_counter()
        rows[name] = {i: r for b in batches for i, r in zip(b, answer(hf, [prompts[i] for i in b], cfg.greedy))}
        print(f"{name}: {encoded} prompt tokens encoded, {attended} cached positions per decoding step, "
              f"{time.perf_counter() - t:.1f} s", flush=True)
    print(f"rows identical: {rows['row_order'] == rows['length_batches']}")


if __name__ == "__main__":
    main()
