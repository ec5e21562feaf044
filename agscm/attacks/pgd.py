"""PGD (Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", 2018)."""

from __future__ import annotations

import torch
from torch import nn

from agscm.attacks.base import Attack


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
        adversarial = images.clone()
        if self.random_start:
            adversarial = self.project(images, images + self._random_delta(images))
        for _ in range(self.steps):
            grad = self.input_gradient(adversarial, labels)
            if self.norm == "linf":
                step = self.alpha * grad.sign()
            else:
                norms = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
                step = self.alpha * grad / norms
            adversarial = self.project(images, adversarial + step)
        return adversarial

    def _random_delta(self, images: torch.Tensor) -> torch.Tensor:
        if self.norm == "linf":
            return torch.empty_like(images).uniform_(-self.eps, self.eps)
        direction = torch.randn_like(images)
        direction /= direction.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        radius = torch.rand(len(images), 1, 1, 1, device=images.device)
        return direction * radius * self.eps
