"""The whole safety stage of a profile on one model, timed by part (what `c2cc safety` runs, each call clocked).

Runs `safety.run_safety` (every attack and the benign requests) into a fresh folder and prints the stage's seconds,
the seconds spent in each of its calls (loading the model, answering prompts, the GCG and AutoDAN searches, PAIR's
loop, the judge), the ASR of each attack and the benign refusal rate, as one JSON line. To compare two versions of
the code, run it with each checkout first on PYTHONPATH, both at the same time, one thread each (`--threads 1`), on
the same model: `code` in the output names the package that ran.

    python bench/safety_stage.py --model outputs/default/train/adapter --dtype bfloat16   # about 10 minutes, 2 cores
"""
import argparse, json, os, tempfile, time
from collections import defaultdict


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="default")
    ap.add_argument("--model", default="default", help="a model name, folder or adapter (default: the embedded model)")
    ap.add_argument("--dtype", default=None, help="auto, float32 or bfloat16 (default: the profile's, fp32 on CPU)")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's, one per core)")
    ap.add_argument("--out", help="output folder (default: a new temporary folder); an unfinished one is resumed")
    args = ap.parse_args()
    if args.threads: os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch
    if args.threads: torch.set_num_threads(args.threads)
    import c2_course_correct
    import c2_course_correct.safety as safety
    seconds, calls = defaultdict(float), defaultdict(int)

    def clocked(name: str, f):
        def g(*a, **k):
            t = time.perf_counter()
            try: return f(*a, **k)
            finally: seconds[name] += time.perf_counter() - t; calls[name] += 1
        return g

    def clocked_loop(f):   # PAIR yields each behavior's result as it finishes: its clock runs while it works
        def g(*a, **k):
            t = time.perf_counter()
            for res in f(*a, **k):
                seconds["pair_attack"] += time.perf_counter() - t
                yield res
                t = time.perf_counter()
            seconds["pair_attack"] += time.perf_counter() - t; calls["pair_attack"] += 1
        return g

    for name in ("make_backend", "answer", "gcg_attack", "autodan_attack", "judge_responses"):
        setattr(safety, name, clocked(name, getattr(safety, name)))
    safety.pair_attack = clocked_loop(safety.pair_attack)
    cfg = safety.SafetyConfig.from_profile(args.profile, model=args.model,
                                           **({"dtype": args.dtype} if args.dtype else {}))
    out = args.out or tempfile.mkdtemp(prefix="safety-stage-")
    t = time.perf_counter()
    s = safety.run_safety(cfg, out, progress=False)
    print(json.dumps(dict(code=os.path.dirname(c2_course_correct.__file__), model=args.model, dtype=s["dtype"],
                          threads=torch.get_num_threads(), seconds=round(time.perf_counter() - t, 1),
                          parts={k: round(v, 1) for k, v in seconds.items()}, calls=calls, out=out,
                          asr={a: v["asr"] for a, v in s["asr"].items()},
                          benign_refusal=s["benign"]["refusal_rate"])), flush=True)


if __name__ == "__main__":
    main()
