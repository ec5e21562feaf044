"""The Carlini-Wagner margin, one of the paper's loss_f: max(z_y - max_{j!=y} z_j, -kappa).
Its sign already means "y still wins", so it is minimised as it is; it stops pushing once an
image is misclassified by kappa."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from agscm.train.objectives.base import Objective, SourcePass


def margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """z_y - max_{j!=y} z_j per image."""
    true = logits.gather(1, labels.view(-1, 1)).squeeze(1)
    others = logits.masked_fill(F.one_hot(labels, logits.shape[1]).bool(), float("-inf"))
    return true - others.max(dim=1).values


class CarliniWagner(Objective):
    name = "cw"
    log_key = "adv"

    def term(self, view: SourcePass) -> torch.Tensor:
        assert view.logits is not None, "the trainer computes what `needs` asks for"
        # untargeted: drive the true logit below the best other one; targeted: the reverse
        signed = -margin(view.logits, view.goal) if view.targeted else margin(view.logits,
                                                                              view.goal)
        return signed.clamp(min=-self.settings.kappa).mean()
