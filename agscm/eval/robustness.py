"""How a zoo model holds up on a test set: clean, under random noise, and under PGD.

The attack is the data set's challenge attack (agscm.eval.datasets: PGD-40 of 0.01 at eps 0.3 on
MNIST, PGD-20 of 2/255 at 8/255 on CIFAR-10), from a seeded random start so reruns agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from agscm.attacks.base import Attack
from agscm.attacks.noise import RandomNoise
from agscm.attacks.pgd import PGD
from agscm.data import ImageSet
from agscm.data.registry import dataset_tag
from agscm.eval.datasets import SPECS, DatasetSpec
from agscm.models.batches import accuracy, iterate_batches


@dataclass(frozen=True)
class Robustness:
    clean_acc: float
    noise_acc: float
    attack_acc: float
    attack: str  # e.g. "PGD-40, eps 0.3, step 0.01, random start (seed 0)"
    images: int


def spec_for(data: str, channels: int) -> DatasetSpec:
    """The spec whose budget and attack a model of `data` is measured with: by the data set's
    name, else the spec of the same channel count (grey: MNIST's, colour: CIFAR-10's)."""
    by_name = SPECS.get(dataset_tag(data))
    return by_name or next(spec for spec in SPECS.values() if spec.channels == channels)


def attacked_accuracy(model: nn.Module, data: ImageSet, attack: Attack, device: str,
                      batch_size: int = 500) -> float:
    """Accuracy on `attack`'s images, torch seeded first so the same call gives the same number."""
    torch.manual_seed(0)
    correct = 0
    for images, labels in iterate_batches(data, batch_size, device=device):
        adversarial = attack(images, labels)
        with torch.no_grad():
            correct += int((model(adversarial).argmax(1) == labels).sum())
    return correct / max(len(data), 1)


def pgd_accuracy(model: nn.Module, data: ImageSet, attack: PGD, device: str,
                 batch_size: int = 500) -> float:
    """Accuracy under `attack` where an image counts as fooled at the first PGD iterate that
    fools it (its random start included): never above plain PGD's accuracy, and much cheaper on
    natural models, whose images are mostly fooled within a few steps. Seeded like
    `attacked_accuracy`."""
    torch.manual_seed(0)
    model.eval()
    correct = 0
    for images, labels in iterate_batches(data, batch_size, device=device):
        adversarial = attack.project(images, images + attack.random_delta(images))
        alive = torch.arange(len(labels), device=images.device)
        for step in range(attack.steps + 1):
            with torch.no_grad():
                still = model(adversarial[alive]).argmax(1) == labels[alive]
            alive = alive[still]
            if step == attack.steps or len(alive) == 0:
                break
            gradient = attack.input_gradient(adversarial[alive], labels[alive])
            adversarial[alive] = attack.project(
                images[alive], adversarial[alive] + attack.ascent_step(gradient, attack.alpha))
        correct += len(alive)
    return correct / max(len(data), 1)


def measure_robustness(model: nn.Module, data: ImageSet, spec: DatasetSpec,
                       device: str = "cpu") -> Robustness:
    model.eval()
    pgd = PGD(model, eps=spec.eps, alpha=spec.check_alpha, steps=spec.check_steps,
              random_start=True)
    return Robustness(
        clean_acc=accuracy(model, data, device=device),
        noise_acc=attacked_accuracy(model, data, RandomNoise(model, eps=spec.eps), device),
        attack_acc=pgd_accuracy(model, data, pgd, device),
        attack=f"PGD-{spec.check_steps}, eps {spec.eps:.4g}, step {spec.check_alpha:.4g}, "
               "random start (seed 0); fooled at the first step that fools",
        images=len(data))
