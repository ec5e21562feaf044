"""Why generators fail against an adversarially trained source: parameterisation or amortisation?

    python benchmarks/robust_source_probe.py --source mnist-adv --zoo runs/zoo \
        --generators runs/probe-mnist-adv/*.safetensors --out benchmarks/results/robust_probe.json

On the first --limit `val` images (never the test set), the source's white-box accuracy under:
PGD-40 (Madry's 0.01 steps, random start); *per-batch optimisation of the generator's own
output form*, delta = eps * tanh(raw), with raw optimised by Adam for each batch (what a
generator of unlimited capacity could reach); the same with a straight-through sign
(delta = eps * sign(raw)); random +-eps noise (the floor); and each trained generator given.
If the optimised tanh form reaches PGD while trained generators stay near the floor, the bound
is not the obstacle: one feed-forward map that must serve every image is.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.nn import functional as F

from agscm.attacks.pgd import PGD
from agscm.attacks.registry import make_attack
from agscm.data import ImageSet, load_split
from agscm.models.batches import iterate_batches
from agscm.models.generator_checkpoint import load_generator
from agscm.models.registry import load_classifier

Crafter = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def optimised_delta(model: torch.nn.Module, eps: float, steps: int, lr: float,
                    sign: bool) -> Crafter:
    """x -> clip(x + delta(raw)) with raw fitted to this batch by Adam on -CE."""
    def craft(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raw = (torch.randn_like(images) * 0.1).requires_grad_(True)
        optimiser = torch.optim.Adam([raw], lr=lr)

        def delta() -> torch.Tensor:
            if sign:  # forward the sign, backward the identity (straight-through)
                return eps * (raw + (raw.sign() - raw).detach())
            return eps * torch.tanh(raw)

        for _ in range(steps):
            loss = -F.cross_entropy(model((images + delta()).clamp(0, 1)), labels)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        return (images + delta()).clamp(0, 1).detach()
    return craft


def generated(generator: torch.nn.Module) -> Crafter:
    def craft(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return generator(images)
    return craft


def accuracy_under(model: torch.nn.Module, craft: Crafter, data: ImageSet, batch: int) -> float:
    torch.manual_seed(0)
    correct = 0
    for images, labels in iterate_batches(data, batch):
        adversarial = craft(images, labels)
        with torch.no_grad():
            correct += int((model(adversarial).argmax(1) == labels).sum())
    return correct / len(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data/mnist")
    parser.add_argument("--source", required=True)
    parser.add_argument("--zoo", default="runs/zoo")
    parser.add_argument("--eps", type=float, default=0.3)
    parser.add_argument("--limit", type=int, default=500)
    parser.add_argument("--steps", type=int, default=100, help="Adam steps of the optimised forms")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--generators", nargs="*", default=[])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    model, _ = load_classifier(args.source, Path(args.zoo))
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    data = load_split(args.data, "val").subset(args.limit)
    crafters: dict[str, Crafter] = {
        "noise (floor)": make_attack("noise", model, args.eps),
        "pgd-40": PGD(model, eps=args.eps, alpha=0.01, steps=40, random_start=True),
        f"optimised eps*tanh(raw), Adam {args.steps} steps": optimised_delta(
            model, args.eps, args.steps, args.lr, sign=False),
        f"optimised eps*sign(raw), straight-through, Adam {args.steps} steps": optimised_delta(
            model, args.eps, args.steps, args.lr, sign=True),
    }
    for path in args.generators:
        generator, _, _ = load_generator(Path(path))
        crafters[f"generator {path}"] = generated(generator)
    rows = {}
    for name, craft in crafters.items():
        start = time.perf_counter()
        rows[name] = {"accuracy": accuracy_under(model, craft, data, 250),
                      "seconds": round(time.perf_counter() - start, 1)}
        print(f"{name}: {rows[name]['accuracy']:.2%} ({rows[name]['seconds']} s)", flush=True)
    command = shlex.join(["python", "benchmarks/robust_source_probe.py", *sys.argv[1:]])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"command": command, "source": args.source,
                                          "images": len(data), "split": "val", "rows": rows},
                                         indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
