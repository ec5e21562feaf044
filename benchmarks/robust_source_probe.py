"""Why generators fail against an adversarially trained source: parameterisation or amortisation?

    python benchmarks/robust_source_probe.py --source mnist-adv --zoo runs/zoo \
        --generators runs/probe-mnist-adv/*.safetensors --out benchmarks/results/robust_probe.json

On the first --limit `val` images (never the test set), the source's white-box accuracy under:
PGD (--pgd-steps of --alpha, random start; Madry's MNIST schedule by default); *per-batch
optimisation of the generator's own output form*, delta = eps * tanh(raw), with raw optimised
by Adam for each batch (what a generator of unlimited capacity could reach); the same with a
straight-through sign (delta = eps * sign(raw)); random +-eps noise (the floor); and each
trained generator given. If the optimised tanh form reaches PGD while trained generators stay
near the floor, the bound is not the obstacle: one feed-forward map that must serve every
image is.

`--fit-images N` measures that amortisation gap directly: full-resolution generators trained
on only the first N `fit` images for --fit-epochs, one against the source (-CE), one
regressing onto PGD's perturbations of those images (MSE, "distillation": a dense target
instead of the source's small gradient); then every row is also scored on those N images.
A generator that cannot fool the source even on the images it was fitted to lacks capacity
or optimisation, not generalisation.
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
from agscm.models.generator import Generator, GeneratorConfig
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


FIT_BATCH = 32


def fitted_generator(model: torch.nn.Module, data: ImageSet, eps: float, epochs: int,
                     width: int, lr: float, pgd: PGD | None = None) -> Generator:
    """A full-resolution generator trained on `data` only: against `model` by -CE, or, with
    `pgd`, by regression onto PGD's perturbations of the same images."""
    images, labels = next(iterate_batches(data, len(data)))
    targets = None if pgd is None else torch.cat(
        [pgd(chunk, chunk_labels) - chunk for chunk, chunk_labels
         in zip(images.split(250), labels.split(250), strict=True)])
    torch.manual_seed(0)
    generator = Generator(GeneratorConfig(channels=images.shape[1], width=width,
                                          downsamplings=0, eps=eps))
    optimiser = torch.optim.Adam(generator.parameters(), lr=lr)
    for _ in range(epochs):
        for index in torch.randperm(len(images)).split(FIT_BATCH):
            delta = generator.perturbation(images[index])
            if targets is None:
                loss = -F.cross_entropy(model((images[index] + delta).clamp(0, 1)), labels[index])
            else:
                loss = F.mse_loss(delta, targets[index]) / eps**2
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return generator.eval()


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
    parser.add_argument("--pgd-steps", type=int, default=40)
    parser.add_argument("--alpha", type=float, default=0.01, help="PGD's step size")
    parser.add_argument("--steps", type=int, default=100, help="Adam steps of the optimised forms")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--generators", nargs="*", default=[])
    parser.add_argument("--fit-images", type=int, default=0,
                        help="> 0: also fit generators to this many `fit` images")
    parser.add_argument("--fit-epochs", type=int, default=20)
    parser.add_argument("--fit-width", type=int, default=32)
    parser.add_argument("--fit-lr", type=float, default=1e-3)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    model, _ = load_classifier(args.source, Path(args.zoo))
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    data = load_split(args.data, "val").subset(args.limit)
    pgd = PGD(model, eps=args.eps, alpha=args.alpha, steps=args.pgd_steps, random_start=True)
    crafters: dict[str, Crafter] = {
        "noise (floor)": make_attack("noise", model, args.eps),
        f"pgd-{args.pgd_steps}": pgd,
        f"optimised eps*tanh(raw), Adam {args.steps} steps": optimised_delta(
            model, args.eps, args.steps, args.lr, sign=False),
        f"optimised eps*sign(raw), straight-through, Adam {args.steps} steps": optimised_delta(
            model, args.eps, args.steps, args.lr, sign=True),
    }
    for path in args.generators:
        generator, _, _ = load_generator(Path(path))
        crafters[f"generator {path}"] = generated(generator)
    fit = load_split(args.data, "fit").subset(args.fit_images) if args.fit_images > 0 else None
    fitting_seconds = {}
    if fit is not None:
        for kind, target in (("-CE against the source", None),
                             (f"MSE to pgd-{args.pgd_steps}", pgd)):
            start = time.perf_counter()
            generator = fitted_generator(model, fit, args.eps, args.fit_epochs, args.fit_width,
                                         args.fit_lr, target)
            name = (f"generator width {args.fit_width} fitted to the {len(fit)} fit images, "
                    f"{kind}, {args.fit_epochs} epochs")
            crafters[name] = generated(generator)
            fitting_seconds[name] = round(time.perf_counter() - start, 1)
    rows: dict[str, dict[str, float]] = {}
    for name, craft in crafters.items():
        start = time.perf_counter()
        rows[name] = {"accuracy": accuracy_under(model, craft, data, 250)}
        if name in fitting_seconds:
            rows[name]["fitting seconds"] = fitting_seconds[name]
        if fit is not None:
            rows[name]["accuracy on the fit images"] = accuracy_under(model, craft, fit, 250)
        rows[name]["seconds"] = round(time.perf_counter() - start, 1)
        print(f"{name}: " + ", ".join(f"{key} {value:.2%}" for key, value in rows[name].items()
                                      if "seconds" not in key)
              + f" ({rows[name]['seconds']} s)",
              flush=True)
    command = shlex.join(["python", "benchmarks/robust_source_probe.py", *sys.argv[1:]])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"command": command, "source": args.source,
                                          "images": len(data), "split": "val",
                                          "fit_images": len(fit) if fit is not None else 0,
                                          "rows": rows},
                                         indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
