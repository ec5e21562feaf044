"""What every attack shares: eps checks, [0,1] space, batching, and restoring the model's mode."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn

from agscm.errors import AgscmError

NORMS = ("linf", "l2")


def l2_norms(batch: torch.Tensor) -> torch.Tensor:
    """Each image's L2 norm, shaped (N, 1, 1, 1) to divide the batch; floored to avoid 0/0."""
    return batch.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)


class Attack(ABC):
    """Base for baselines. Subclasses write only `forward(images, labels) -> adversarial`.

    Images are float tensors (N, C, H, W) in [0, 1]; labels int64 (N,). `__call__` puts the
    model in eval mode for the attack and restores whatever mode it had before.
    """

    name = "attack"

    def __init__(self, model: nn.Module, eps: float, norm: str = "linf") -> None:
        if not eps > 0:
            raise AgscmError(f"eps must be > 0, got {eps}")
        if norm not in NORMS:
            raise AgscmError(f"unknown norm {norm!r}; choose one of {', '.join(NORMS)}")
        if norm == "linf" and eps > 1:
            raise AgscmError(f"an L-inf eps above 1 is meaningless in [0,1] pixels, got {eps}")
        self.model = model
        self.eps = float(eps)
        self.norm = norm

    @abstractmethod
    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Return adversarial images for one batch."""

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.enable_grad():
                adversarial = self.forward(images.detach(), labels)
        finally:
            self.model.train(was_training)
        return adversarial.detach()

    def project(self, images: torch.Tensor, adversarial: torch.Tensor) -> torch.Tensor:
        """Project onto the eps-ball around `images` and into [0, 1]."""
        delta = adversarial - images
        if self.norm == "linf":
            delta = delta.clamp(-self.eps, self.eps)
        else:
            delta = delta * (self.eps / l2_norms(delta)).clamp(max=1.0)
        return (images + delta).clamp(0, 1)

    def ascent_step(self, grad: torch.Tensor, size: float) -> torch.Tensor:
        """The steepest-ascent step of length `size` in this attack's norm (sign for L-inf)."""
        if self.norm == "linf":
            return size * grad.sign()
        return size * grad / l2_norms(grad)

    def input_gradient(self, adversarial: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """d CE(model(x'), y) / d x' for the plain classification loss."""
        adversarial = adversarial.detach().requires_grad_(True)
        loss = nn.functional.cross_entropy(self.model(adversarial), labels)
        return torch.autograd.grad(loss, adversarial)[0]
