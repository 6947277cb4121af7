"""Where the default stages spend their time: each stage run for real on a slice of the default profile, timed inside.

C2-Eval, C2-Syn and the safety stage (its long templated prompts, AutoDAN and GCG) run through their own
functions with global forward hooks on the model's modules, which split the time spent inside the model into
prompt encoding (a forward pass over more than one new position), decoding (one position), and forward passes on
embeddings (GCG's candidate scoring); and by part: attention, MLP, the output layer (the 49,152 x 576 vocabulary
projection), the rest (norms, embeddings, residuals). Loading the model is timed apart; what is neither loading nor inside a
forward pass (sampling over the vocabulary, tokenizing, judging, Python) is "outside the model". The DPO step runs under torch.profiler: TRL's fused log-prob head (the
output layer, forward and backward), attention, all matrix products.

The hooks cost a little themselves (a Python call per timed module), so shares matter here, not seconds; the
stages' own seconds are in their records and BENCHMARKS.md.

    python bench/stage_profile.py [--dtype auto]       # about 5 minutes on 2 CPU cores in fp32
"""
import argparse, time
from collections import defaultdict


class ModelClock:
    "Seconds inside forward passes, by phase (encode, decode, embeds) and by part (attention, mlp, output layer)."

    def __init__(self):
        import torch
        self.seconds, self.calls, self.started, self.phase = defaultdict(float), defaultdict(int), {}, "embeds"
        self.handles = [torch.nn.modules.module.register_module_forward_pre_hook(self.pre),
                        torch.nn.modules.module.register_module_forward_hook(self.post)]

    @staticmethod
    def part(module) -> str | None:
        name = type(module).__name__
        if name.endswith("ForCausalLM"): return "model"
        if name.endswith("Attention"): return "attention"
        if name.endswith("MLP"): return "mlp"
        if name == "Linear" and module.out_features > 32_000: return "output layer"
        if name == "Embedding" and module.num_embeddings > 32_000: return "embedding"
        return None

    def pre(self, module, args):
        part = self.part(module)
        if part == "model": self.phase = "embeds"   # until the embedding says otherwise: GCG passes embeddings
        if part == "embedding" and args: self.phase = "encode" if args[0].shape[-1] > 1 else "decode"
        if part: self.started[id(module)] = time.perf_counter()

    def post(self, module, args, output):
        part = self.part(module)
        if part and id(module) in self.started:
            s = time.perf_counter() - self.started.pop(id(module))
            key = self.phase if part == "model" else part
            self.seconds[key] += s; self.calls[key] += 1

    def close(self):
        for h in self.handles: h.remove()


def timed(stage: str, run) -> dict:
    "Run `run()` under a ModelClock, timing model loads too (every stage loads through `models.load_model`); one row of shares of its wall time."
    import c2_course_correct.models as models
    clock, load, loading = ModelClock(), models.load_model, []
    def timed_load(*a, **k):
        t = time.perf_counter(); result = load(*a, **k); loading.append(time.perf_counter() - t); return result
    models.load_model = timed_load
    t0 = time.perf_counter()
    try: run()
    finally: clock.close(); models.load_model = load
    wall = time.perf_counter() - t0
    s = clock.seconds
    inside = s["encode"] + s["decode"] + s["embeds"]
    share = lambda x: f"{x / wall:.0%}"
    return {"stage": stage, "wall s": f"{wall:.1f}", "loading the model": share(sum(loading)), "encoding": share(s["encode"]),
            "decoding": share(s["decode"]), "forward on embeddings": share(s["embeds"]), "attention": share(s["attention"]),
            "MLP": share(s["mlp"]), "output layer": share(s["output layer"]), "outside the model": share(wall - inside - sum(loading)),
            "forward passes": f"{clock.calls['encode']} + {clock.calls['decode']} + {clock.calls['embeds']}"}


def dpo_profile(dtype: str | None, steps: int) -> list[tuple[str, float, float]]:
    "Seconds and share of the DPO step's profiled time: the fused output layer, attention, every matrix product."
    import tempfile
    import transformers
    from torch.profiler import ProfilerActivity, profile
    from c2_course_correct.dpo import train_dpo
    from c2_course_correct.train import TrainConfig
    box, train = {}, transformers.Trainer.train

    def profiled(self, *a, **k):
        with profile(activities=[ProfilerActivity.CPU]) as p: result = train(self, *a, **k)
        box["events"] = p.key_averages(); return result
    transformers.Trainer.train = profiled
    try:
        with tempfile.TemporaryDirectory() as out:
            train_dpo(TrainConfig.from_profile("default", max_steps=steps, save_steps=10_000, dtype=dtype), out, progress=False)
    finally: transformers.Trainer.train = train
    ev = box["events"]
    total = sum(e.self_cpu_time_total for e in ev) / 1e6
    cpu_total = lambda *names: sum(e.cpu_time_total for e in ev if e.key in names) / 1e6
    rows = [("output layer (TRL's fused log-prob head, forward and backward)", cpu_total("ChunkedLogProbFunction", "ChunkedLogProbFunctionBackward")),
            ("attention (the fused scaled-dot-product kernels, forward and backward)", sum(e.self_cpu_time_total for e in ev if "_scaled_dot_product" in e.key) / 1e6),
            ("every matrix product (mm, addmm, bmm; the head's included)", sum(e.self_cpu_time_total for e in ev if e.key in ("aten::mm", "aten::addmm", "aten::addmm_", "aten::bmm")) / 1e6)]
    return [(name, secs, secs / total) for name, secs in rows] + [(f"profiled total, {steps} steps", total, 1.0)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dtype", default=None, help="auto, float32 or bfloat16 (default: the profile's, fp32 on CPU)")
    ap.add_argument("--steps", type=int, default=3, help="DPO steps profiled")
    args = ap.parse_args()
    from c2_course_correct.benchmark import EvalConfig, run_c2_eval
    from c2_course_correct.core import scratch_folder
    from c2_course_correct.models import dtype_name
    from c2_course_correct.safety import SafetyConfig, run_safety
    from c2_course_correct.synthesis import SynthConfig, run_c2_syn
    work, d = scratch_folder("c2cc-profile-"), args.dtype
    print(f"default profile slices, dtype {dtype_name(None, d)}")
    rows = [timed("C2-Eval, 4 items (64 paths of 32 tokens)",
                  lambda: run_c2_eval(EvalConfig.from_profile("default", n_items=4, dtype=d), work/"eval", progress=False)),
            timed("C2-Syn, 6 requests (30 sequences of 32 tokens)",
                  lambda: run_c2_syn(SynthConfig.from_profile("default", n_requests=6, dtype=d), work/"synth", progress=False)),
            timed("safety: templates, AutoDAN, GCG on 2 behaviors (1 adaptive), 4 benign",
                  lambda: run_safety(SafetyConfig.from_profile("default", attacks=["templates", "autodan", "gcg"], n_behaviors=2,
                                                               adaptive_behaviors=1, benign=4, dtype=d), work/"safety", progress=False))]
    head = list(rows[0])
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for r in rows: print("| " + " | ".join(str(r[k]) for k in head) + " |")
    print(f"\nDPO, {args.steps} steps of the default train section under torch.profiler:\n| part | seconds | share |\n|---|---:|---:|")
    for name, secs, share in dpo_profile(d, args.steps): print(f"| {name} | {secs:.1f} | {share:.0%} |")


if __name__ == "__main__":
    main()
