"""MI-FGSM (Dong et al., "Boosting Adversarial Attacks with Momentum", CVPR 2018)."""

from __future__ import annotations

import torch
from torch import nn

from agscm.attacks.base import Attack


class MIFGSM(Attack):
    """Iterative FGSM with a momentum of L1-normalised gradients, projected to the eps-ball.

        g <- mu * g + grad / ||grad||_1        x' <- clip(x' + alpha * sign(g))

    The gradient is divided by its mean absolute value, i.e. ||grad||_1 over the number of
    pixels: the same constant for every step, so sign(g) (and g / ||g||_2) are unchanged, and g
    stays near 1 in size (torchattacks does the same).
    Distance: L-inf (default) or L2 (the step is `alpha * g / ||g||_2`).
    Arguments: eps (radius), alpha (step size; None: eps / steps, as in the paper), steps (10),
    decay (mu, 1.0), norm.
    Shapes: images (N, C, H, W) in [0, 1], labels (N,) -> adversarial (N, C, H, W).
    """

    name = "mifgsm"

    def __init__(self, model: nn.Module, eps: float = 0.3, alpha: float | None = None,
                 steps: int = 10, decay: float = 1.0, norm: str = "linf") -> None:
        super().__init__(model, eps, norm)
        self.steps = int(steps)
        self.alpha = float(alpha) if alpha is not None else self.eps / self.steps
        self.decay = float(decay)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        adversarial = images.clone()
        momentum = torch.zeros_like(images)
        for _ in range(self.steps):
            grad = self.input_gradient(adversarial, labels)
            scale = grad.abs().mean(dim=(1, 2, 3), keepdim=True)
            momentum = grad / scale.clamp_min(torch.finfo(grad.dtype).tiny) + self.decay * momentum
            adversarial = self.project(images, adversarial + self.ascent_step(momentum, self.alpha))
        return adversarial
