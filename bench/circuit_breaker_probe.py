"""Why circuit breakers' rerouting loss stays at 1 on the embedded model (issue 37): the same LoRA, optimizer and rows
as `c2cc train --method circuit-breaker`, trained a few steps with each loss variant, printing the rerouting loss (mean
ReLU cosine to the frozen model at the target layers) and the retain distance every few steps, and the share of the
hidden states' squared norm in their three largest dimensions (massive activations).

    python bench/circuit_breaker_probe.py --steps 24 --lr 5e-4

Variants: `paper` (c_s = alpha(1 - t/2T), c_r = alpha t/2T, the trainer's), `reroute-only` (c_r = 0), `retain-late`
(c_r = 0 for the first quarter of the steps, then the paper's), `retain-margin` (the paper's schedule, the retain
distance counted only beyond 5% of the frozen state's norm). The last column is the cosine of the retained (benign
and refusal) tokens' states to the frozen ones at the targets after the last step: 1 when rerouting spared them.
A constant learning rate, gradient norm clipped at 1, AdamW without weight decay, 16 rows in batches of 4, the
sources' reference answers as the retained utility answers.
"""
import argparse

import torch
from peft import get_peft_model

from c2_course_correct.circuit_breaker import (both_hidden, circuit_breaker_examples, coefficients, massive_share,
                                              pair_batch, rerouting_loss)
from c2_course_correct.models import load_model
from c2_course_correct.retain import hidden_distance, retain_layers
from c2_course_correct.train import TrainConfig, lora_config
from c2_course_correct.utility import utility_answers

VARIANTS = ("paper", "reroute-only", "retain-late", "retain-margin")


def probe(variant: str, steps: int, lr: float, alpha: float, every: int) -> tuple[list[float], list[float], float]:
    """Train `steps` steps of `variant`; the rerouting loss and retain distance at every `every`-th step, and the
    retained tokens' cosine to the frozen states after the last."""
    torch.manual_seed(0)
    cfg = TrainConfig.from_profile("default", method="circuit-breaker", utility_answers="reference", utility_ratio=0.5,
                                   n_pairs=16)
    model, tok = load_model("default")
    rows, _ = circuit_breaker_examples(cfg, tok, utility_answers(cfg, need=8))
    targets = retain_layers(None, model.config.num_hidden_layers, "reroute_layers")
    top = max(targets)
    peft = lora_config(cfg); peft.layers_to_transform = list(range(top))
    net = get_peft_model(model, peft).train()
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    reroute, retain = [], []
    for step in range(steps):
        b = pair_batch(rows[4 * step % 16:4 * step % 16 + 4], tok.pad_token_id)
        h, h0 = both_hidden(net, net, b, top)
        r = rerouting_loss(h, h0, targets, b["reroute_mask"])
        k = hidden_distance(h, h0, list(range(1, top + 1)), b["retain_mask"])
        if variant == "retain-margin":
            m = b["retain_mask"]
            k = sum((torch.relu((h[i] - h0[i]).float().norm(dim=-1) - 0.05 * h0[i].float().norm(dim=-1)) * m).sum()
                    for i in range(1, top + 1)) / (m.sum() * top)
        c_s, c_r = coefficients(alpha, step, steps)
        if variant == "reroute-only" or (variant == "retain-late" and step < steps // 4): c_r = 0.0
        opt.zero_grad(); (c_s * r + c_r * k).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0); opt.step()
        if step % every == 0 or step == steps - 1: reroute.append(r.item()); retain.append(k.item())
    with torch.no_grad(): kept = rerouting_loss(*both_hidden(net, net, b, top), targets, b["retain_mask"], relu=False)
    return reroute, retain, kept.item()


def shares(layers: list[int]) -> dict[int, dict]:
    "`circuit_breaker.massive_share` at `layers` over the harmful answers of the probe's first four rows."
    cfg = TrainConfig.from_profile("default", method="circuit-breaker", utility_answers="reference", utility_ratio=0.5,
                                   n_pairs=8)
    model, tok = load_model("default")
    return massive_share(model, tok, circuit_breaker_examples(cfg, tok, utility_answers(cfg, need=4))[0][:4], layers)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=24)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--alpha", type=float, default=10.0)
    p.add_argument("--every", type=int, default=3, help="print every this many steps")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    a = p.parse_args()
    print("share of the squared hidden-state norm in the 3 largest of 576 dimensions: "
          + ", ".join(f"layer {i} {v['share']:.2f}" for i, v in shares([9, 19]).items()))
    print(f"| variant | rerouting loss every {a.every} steps (lr {a.lr}, {a.steps} steps) | retain term | retained "
          "cosine |")
    print("|---|---|---|---|")
    for v in a.variants:
        r, k, kept = probe(v, a.steps, a.lr, a.alpha, a.every)
        print(f"| {v} | {' '.join(f'{x:.3f}' for x in r)} | {' '.join(f'{x:.2f}' for x in k)} | {kept:.3f} |")


if __name__ == "__main__":
    main()
