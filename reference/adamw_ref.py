#!/usr/bin/env python3
"""PyTorch reference for switchkd's optimizer (train/optimizer.go): AdamW with the Hugging Face
Trainer's parameter groups (weight decay on matrices, none on biases and norms) after
torch.nn.utils.clip_grad_norm_, in float64.

    /usr/bin/python3 reference/adamw_ref.py --out testdata/adamw/fixture.json

Three parameters ("proj.weight" [3, 4], "proj.bias" [4], "norm.weight" [4]) take four steps
with given gradients and learning rates. The gradients are scaled so the global norm is above
max_grad_norm (clipped) at some steps and below it at others. The fixture holds the initial
parameters, every step's gradients, lr, the global norm before clipping and the parameters
after the step.
"""
import argparse
import json

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.manual_seed(7)
    shapes = {"proj.weight": (3, 4), "proj.bias": (4,), "norm.weight": (4,)}
    params = {n: torch.nn.Parameter(torch.randn(*s, dtype=torch.float64)) for n, s in shapes.items()}
    decay = [p for n, p in params.items() if p.dim() > 1 and not n.endswith(".bias") and "norm" not in n]
    nodecay = [p for n, p in params.items() if not any(p is q for q in decay)]
    hp = dict(beta1=0.9, beta2=0.95, eps=1e-6, weight_decay=0.1, max_grad_norm=1.0)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": hp["weight_decay"]},
                             {"params": nodecay, "weight_decay": 0.0}],
                            lr=1.0, betas=(hp["beta1"], hp["beta2"]), eps=hp["eps"])
    fixture = {"hyper": hp, "initial": {n: p.detach().flatten().tolist() for n, p in params.items()},
               "shapes": {n: list(s) for n, s in shapes.items()}, "steps": []}
    for step, (lr, gscale) in enumerate([(1e-2, 3.0), (2e-2, 0.1), (5e-3, 2.0), (1e-2, 0.3)]):
        grads = {n: torch.randn(*s, dtype=torch.float64) * gscale for n, s in shapes.items()}
        for n, p in params.items():
            p.grad = grads[n].clone()
        norm = torch.nn.utils.clip_grad_norm_(list(params.values()), hp["max_grad_norm"])
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        fixture["steps"].append({
            "lr": lr, "grads": {n: g.flatten().tolist() for n, g in grads.items()},
            "norm": float(norm), "params": {n: p.detach().flatten().tolist() for n, p in params.items()}})
    with open(args.out, "w") as f:
        json.dump(fixture, f, indent=1)


if __name__ == "__main__":
    main()
