"""FGSM (Goodfellow et al., "Explaining and Harnessing Adversarial Examples", ICLR 2015)."""

from __future__ import annotations

import torch
from torch import nn

from agscm.attacks.base import Attack


class FGSM(Attack):
    """One step of size eps along the loss gradient: `x' = clip(x + eps * sign(grad_x J), 0, 1)`.

    Distance: L-inf (default; the sign step) or L2 (the step is `eps * grad / ||grad||_2`, the
    fast gradient method). Arguments: eps (radius), norm.
    Shapes: images (N, C, H, W) in [0, 1], labels (N,) -> adversarial (N, C, H, W).
    """

    name = "fgsm"

    def __init__(self, model: nn.Module, eps: float = 0.3, norm: str = "linf") -> None:
        super().__init__(model, eps, norm)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        step = self.ascent_step(self.input_gradient(images, labels), self.eps)
        return self.project(images, images + step)
