"""A fixed Gaussian blur of the perturbation, part of the generator (so it is exported too).

Smooth perturbations transfer better than pixel-level noise to models the attacker never saw
(translation-invariant attacks, Dong et al. 2019; CDA's kernel smoothing, Naseer et al. 2019).
A normalised kernel is a convex combination of pixels, so the L-inf bound still holds exactly.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class GaussianBlur(nn.Module):
    """Depthwise Gaussian blur with a fixed kernel of std `sigma` pixels (size 2*ceil(2 sigma)+1),
    replicate padding so the border keeps its size. Shapes: (N, C, H, W) -> (N, C, H, W)."""

    def __init__(self, channels: int, sigma: float) -> None:
        super().__init__()
        radius = max(1, math.ceil(2 * sigma))
        offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
        line = torch.exp(-offsets.pow(2) / (2 * sigma**2))
        kernel = torch.outer(line, line)
        kernel = (kernel / kernel.sum()).expand(channels, 1, -1, -1).clone()
        self.register_buffer("kernel", kernel)
        self.radius = radius
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded = F.pad(x, (self.radius,) * 4, mode="replicate")
        return F.conv2d(padded, self.kernel, groups=self.channels)
