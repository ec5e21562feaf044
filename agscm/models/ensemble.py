"""Several classifiers as one: the mean of their logits, so any attack can target an ensemble."""

from __future__ import annotations

import torch
from torch import nn

ENSEMBLE_SEPARATOR = "+"


class Ensemble(nn.Module):
    """Logits = mean of the members' logits (all see the same [0,1] input).

    Grad-CAM (and so ATA) reads the first member's declared layer: the gradient of the mean
    logit there is that member's own Grad-CAM gradient over the number of members, and every
    Grad-CAM distance in agscm is normalised by the clean map's peak, so the scale cancels.
    """

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        first = getattr(members[0], "default_gradcam_layer", None)
        if isinstance(first, str):
            self.default_gradcam_layer = f"members.0.{first}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(x) for member in self.members]).mean(dim=0)


def ensemble_members(label: str) -> list[str]:
    """`a+b` -> ['a', 'b']; a plain name -> [name]."""
    return [part for part in label.split(ENSEMBLE_SEPARATOR) if part]
