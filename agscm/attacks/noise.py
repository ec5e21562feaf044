"""Random noise of the attack's size: the floor that any attack worth its compute must beat."""

from __future__ import annotations

import torch
from torch import nn

from agscm.attacks.base import Attack, l2_norms


class RandomNoise(Attack):
    """A random point on the surface of the eps-ball; uses no gradient and ignores the labels.

    L-inf (default): every pixel moves by +eps or -eps, signs uniform. L2: a uniformly random
    direction of length eps. A robust model often shrugs this off, so a transfer attack that
    leaves a target no lower than noise has transferred nothing. Arguments: eps, norm.
    Shapes: images (N, C, H, W) in [0, 1], labels (N,) -> adversarial (N, C, H, W).
    """

    name = "noise"

    def __init__(self, model: nn.Module, eps: float = 0.3, norm: str = "linf") -> None:
        super().__init__(model, eps, norm)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        noise = torch.randn_like(images)
        step = noise.sign() if self.norm == "linf" else noise / l2_norms(noise)
        return self.project(images, images + self.eps * step)
