"""The AEG-GC loss terms (eqs. 10-13): L = L_noise + L_adv + lambda * L_gradcam.

Signs follow the paper: every term is minimised. L_adv is the negative classifier loss and
L_gradcam the negative Grad-CAM distance, so minimising them fools the classifier and pushes
its saliency map away from the clean one.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from agscm.errors import AgscmError

ADV_LOSSES = ("ce", "cw", "mse")


def noise_loss(delta: torch.Tensor, bound: float) -> torch.Tensor:
    """Soft hinge mean(max(0, ||delta||_2 - c)): free below c, linear above."""
    return torch.relu(delta.flatten(1).norm(dim=1) - bound).mean()


def adversarial_loss(logits: torch.Tensor, labels: torch.Tensor, kind: str = "ce",
                     kappa: float = 0.0, targeted: bool = False) -> torch.Tensor:
    """L_adv to minimise. Untargeted: -loss_f(x', y). Targeted (labels = targets): +loss_f.

    ce: cross-entropy. mse: squared error between softmax and one-hot. cw: Carlini-Wagner
    margin max(z_y - max_{j!=y} z_j, -kappa), whose own sign already means "y still wins".
    """
    if kind == "ce":
        loss = F.cross_entropy(logits, labels)
    elif kind == "mse":
        one_hot = F.one_hot(labels, logits.shape[1]).to(logits.dtype)
        loss = (logits.softmax(dim=1) - one_hot).pow(2).sum(dim=1).mean()
    elif kind == "cw":
        true = logits.gather(1, labels.view(-1, 1)).squeeze(1)
        others = logits.masked_fill(F.one_hot(labels, logits.shape[1]).bool(), float("-inf"))
        margin = true - others.max(dim=1).values
        # untargeted: drive the true logit below the best other one; targeted: the reverse
        return (margin.clamp(min=-kappa) if not targeted else (-margin).clamp(min=-kappa)).mean()
    else:
        raise AgscmError(f"unknown adversarial loss {kind!r}; choose one of {', '.join(ADV_LOSSES)}")
    return loss if targeted else -loss


def gradcam_loss(distance: torch.Tensor, targeted: bool = False) -> torch.Tensor:
    """L_gradcam from per-image distances: -mean(distance) pushes maps apart (untargeted);
    targeted mode pulls the target class's map onto the clean true-class map: +mean(distance)."""
    return distance.mean() if targeted else -distance.mean()
