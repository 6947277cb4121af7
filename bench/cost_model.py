"""GPU-hours for the paper's scale on one H100: C2-Eval of the ten models, C2-Syn's 750K pairs, DPO of two 7B models;
then the whole paper run (safety stages included) on 1 and on 8 GPUs, as `c2cc reproduce --dry-run --gpus N` prices it.

The work (tokens generated and trained per stage) comes from the paper profile, through the same `plan_stages`
and `stage_work` that `c2cc reproduce --dry-run` uses. The time per token comes from the card, not from a
measurement (no GPU run of the paper scale exists in this project); every assumption is printed with the table:

- decoding is bounded by memory bandwidth at small batches and by compute at large ones: one decoding step of a
  batch of B sequences reads the bf16 weights once (2N bytes) and does 2N FLOP per sequence, so tokens/s is at
  most min(B x bandwidth / 2N, MFU x peak / 2N), ignoring the key/value reads (a few % at 32-128 new tokens);
- the prompt (prefill) tokens run at the compute bound; C2-Eval's 8 prompts of an item share their start, so
  with prefix caching only the longest prompt of each item is encoded;
- DPO costs 8N FLOP per trained token (policy forward and backward 6N, reference forward 2N), 10N with gradient
  checkpointing, at the training MFU below; LoRA's saving in FLOP is small (the backward still flows through
  every frozen layer), its saving is memory;
- model loading: 2 minutes per stage.

The last part uses the dry run's own rates and rules (nbs/60_reproduce.ipynb): the stages that split their work
(C2-Syn and safety by shards, training by DDP at an assumed 90% scaling) use every GPU; C2-Eval and helpfulness
one engine each.

    python bench/cost_model.py [--batch 256] [--mfu-decode 0.35] [--mfu-train 0.40]
"""
import argparse

H100 = dict(name="H100 SXM 80GB", bandwidth=3.35e12, bf16_flops=989e12)   # dense bf16, the card's datasheet
PROMPT_TOKENS = dict(eval=260, synth=420)   # mean prompt tokens: a PKU request + an 80-word prefill; a request + its answer cut


def decode_rate(n: float, batch: int, mfu: float, card: dict = H100) -> tuple[float, str]:
    "Tokens/s of batched decoding of a model of `n` parameters in bf16, and which bound sets it."
    memory = batch * card["bandwidth"] / (2 * n)
    compute = mfu * card["bf16_flops"] / (2 * n)
    return (memory, "memory bandwidth") if memory < compute else (compute, f"compute at {mfu:.0%} MFU")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=256, help="sequences decoded together (the paper profile's batch_size)")
    ap.add_argument("--mfu-decode", type=float, default=0.35, help="fraction of peak FLOP/s reached by large-batch decoding")
    ap.add_argument("--mfu-train", type=float, default=0.40, help="fraction of peak FLOP/s reached by DPO training")
    ap.add_argument("--load-s", type=float, default=120)
    args = ap.parse_args()

    from c2_course_correct.plan import model_params, plan_stages, resolve_profile, stage_work
    profile = resolve_profile("paper", [])
    stages = [s for s in plan_stages(profile, "outputs/paper") if s.kind in ("eval", "synth", "train")]
    rows, total = [], 0.0
    for s in stages:
        if s.name == "eval-trained": continue   # priced with the trained models below
        work = stage_work(s, profile)
        n = model_params(work["model"])
        if n is None: rows.append((s.name, work["model"], "size unknown from the name", None)); continue
        if s.kind in ("eval", "synth"):
            gen = work["generated"]
            rate, bound = decode_rate(n, args.batch, args.mfu_decode)
            prompts = gen / s.config.max_new_tokens / (len(s.config.k) if s.kind == "eval" else 5) * PROMPT_TOKENS[s.kind]
            secs = args.load_s + gen / rate + prompts * 2 * n / (args.mfu_decode * H100["bf16_flops"])
            note = f"{gen / 1e6:.2f}M generated tokens at {rate:,.0f} tokens/s ({bound}), {prompts / 1e6:.1f}M prompt tokens"
            if 2 * n > 80e9: note += "; bf16 weights exceed one 80 GB card: 2+ GPUs with tensor parallelism, hours x GPUs"
        else:
            trained = work["trained"]
            secs = args.load_s + (10 if work.get("checkpointing") else 8) * n * trained / (args.mfu_train * H100["bf16_flops"])
            note = f"{trained / 1e6:.0f}M trained tokens (every pair padded to max_length: an upper bound)"
        rows.append((s.name, work["model"], note, secs)); total += secs
    # the paper trains two 7B models and evaluates both after training
    train = next(r for r in rows if r[0] == "train")
    evals = {r[1]: r for r in rows if r[0].startswith("eval")}
    for model in ("meta-llama/Llama-2-7b-chat-hf", "Qwen/Qwen2-7B-Instruct"):
        if model != train[1]:
            rows.append((f"train ({model})", model, train[2], train[3])); total += train[3]
        rows.append((f"eval after training ({model})", model, evals[model][2], evals[model][3])); total += evals[model][3]

    print(f"card: {H100['name']}, {H100['bandwidth'] / 1e12:.2f} TB/s, {H100['bf16_flops'] / 1e12:.0f} TFLOP/s bf16 dense; "
          f"decode batch {args.batch}, decode MFU {args.mfu_decode:.0%}, train MFU {args.mfu_train:.0%}, load {args.load_s:.0f} s a stage")
    print("| stage | model | work | GPU-hours |\n|---|---|---|---|")
    for name, model, note, secs in rows:
        print(f"| {name} | {model} | {note} | {'unknown' if secs is None else f'{secs / 3600:.2f}'} |")
    print(f"| **total** | | (Phi-3-small unknown; Qwen2-72B counted as one GPU's time) | **{total / 3600:.1f}** |")
    for gpus in (1, 8):
        wall, gpu_h = paper_run_hours(gpus)
        print(f"paper run, every stage of `c2cc reproduce --profile paper` (one trained model; Phi-3-small unknown), {gpus} GPU{'s' * (gpus > 1)}: "
              f"{wall:.1f} h wall, {gpu_h:.1f} GPU-hours")
    print(f"total GPU-hours on one H100 of the table's stages (two trained models, no safety stage; the whole run is priced on the lines above) = {total / 3600:.1f}")


def paper_run_hours(gpus: int) -> tuple[float, float]:
    "Wall hours and GPU-hours of the paper profile's planned stages on `gpus` GPUs, by the dry run's estimate."
    from c2_course_correct.plan import estimate_seconds, plan_stages, resolve_profile, stage_gpus, stage_work
    profile = resolve_profile("paper", [])
    wall = gpu_h = 0.0
    for s in plan_stages(profile, "outputs/paper"):
        secs = estimate_seconds(s, stage_work(s, profile), "cuda", gpus) or 0.0
        wall += secs / 3600; gpu_h += secs * stage_gpus(s, "cuda", gpus) / 3600
    return wall, gpu_h


if __name__ == "__main__":
    main()
