"""C2-Syn throughput per backend: requests/s, generated sequences and tokens/s, and the projected time for the
paper's 50K requests on this machine.

Each backend runs `run_c2_syn` on the same requests of the default profile (same seeds, prompts and sampling)
into its own temporary folder; the numbers are the run's own `stats.json` throughput, which times generation
and the quality-control judge, not model loading.

    python bench/c2syn_throughput.py --quick      # 10 requests per backend, about 3 minutes on 2 CPU cores
    python bench/c2syn_throughput.py              # 40 requests per backend
"""
import argparse, tempfile, time
from pathlib import Path

from c2_course_correct.generate import make_backend
from c2_course_correct.synthesis import SynthConfig, run_c2_syn


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="10 requests per backend")
    ap.add_argument("--profile", default="default")
    ap.add_argument("--n-requests", type=int, help="requests per backend (default 40, or 10 with --quick)")
    ap.add_argument("--backends", nargs="+", default=["hf", "vllm"], choices=["hf", "vllm"])
    args = ap.parse_args()
    n = args.n_requests or (10 if args.quick else 40)
    rows = []
    for name in args.backends:
        cfg = SynthConfig.from_profile(args.profile, n_requests=n, backend=name)
        t = time.perf_counter()
        backend = make_backend(name, cfg.model, device=cfg.device, dtype=cfg.dtype, batch_size=cfg.batch_size)
        load_s = time.perf_counter() - t
        with tempfile.TemporaryDirectory() as out:
            stats = run_c2_syn(cfg, Path(out), backend=backend, progress=False)
        tp = stats["throughput"]
        rows.append((name, tp))
        print(f"{name}: load {load_s:.1f} s (not counted); {tp['requests']} requests in {tp['seconds']:.1f} s = "
              f"{tp['requests_per_s']:.3f} requests/s, {tp['sequences_per_s']:.2f} sequences/s, {tp['tokens_per_s']:.1f} "
              f"generated tokens/s; projected {tp['projected_hours_50k']:.1f} h for 50K requests ({', '.join(map(str, tp['runs'][0]))})",
              flush=True)
        del backend
    print(f"model {cfg.model}, max_new_tokens {cfg.max_new_tokens}, qc {cfg.qc}, batch_size {cfg.batch_size}")
    if len(rows) == 2:
        print(f"ratio vllm/hf={rows[1][1]['requests_per_s'] / rows[0][1]['requests_per_s']:.2f} (requests/s)")


if __name__ == "__main__":
    main()
