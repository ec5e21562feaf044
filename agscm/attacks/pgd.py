"""PGD (Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", 2018)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from agscm.attacks.base import Attack, l2_norms


class PGD(Attack):
    """Projected gradient descent on cross-entropy, L-inf (default) or L2.

    Arguments: eps (radius), alpha (step size), steps, random_start (uniform start in the ball).
    With steps=1, alpha=1.25*eps and a random start it is FGSM-RS ("Fast is better than free").
    Shapes: images (N, C, H, W) in [0, 1], labels (N,) -> adversarial (N, C, H, W).
    """

    name = "pgd"

    def __init__(self, model: nn.Module, eps: float = 0.3, alpha: float = 0.01, steps: int = 40,
                 random_start: bool = True, norm: str = "linf") -> None:
        super().__init__(model, eps, norm)
        self.alpha = float(alpha)
        self.steps = int(steps)
        self.random_start = random_start

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.ascend(images, lambda adversarial: self.input_gradient(adversarial, labels))

    def ascend(self, images: torch.Tensor,
               gradient: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """The PGD loop for any loss: `gradient(x')` is d loss / d x' (subclasses swap the loss)."""
        adversarial = images.clone()
        if self.random_start:
            adversarial = self.project(images, images + self.random_delta(images))
        for _ in range(self.steps):
            step = self.ascent_step(gradient(adversarial), self.alpha)
            adversarial = self.project(images, adversarial + step)
        return adversarial

    def random_delta(self, images: torch.Tensor) -> torch.Tensor:
        if self.norm == "linf":
            return torch.empty_like(images).uniform_(-self.eps, self.eps)
        direction = torch.randn_like(images)
        direction /= l2_norms(direction)
        radius = torch.rand(len(images), 1, 1, 1, device=images.device)
        return direction * radius * self.eps
