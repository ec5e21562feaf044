"""Training-time input diversity (DI, Xie et al., CVPR 2019, as used for generators by
CDA/LTP): before the source sees them, x and x' are randomly shrunk and padded back to size at
a random position, the same way for the pair. A perturbation that must fool the source under
these changes cannot lean on exact pixel positions, which transfers better to other models.
Only training sees it: the generator itself, and so the exported model, is unchanged.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from agscm.train.views.base import View

MIN_SCALE = 0.8  # the shrunk image keeps at least this fraction of each side


def diverse_pair(clean: torch.Tensor, adversarial: torch.Tensor, probability: float,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """With `probability`, resize the batch pair to one random smaller size and zero-pad it back
    at one random offset (all draws from the CPU `generator`); else return it unchanged."""
    if probability <= 0 or torch.rand((), generator=generator).item() >= probability:
        return clean, adversarial
    height, width = clean.shape[-2:]
    scale = MIN_SCALE + (1 - MIN_SCALE) * torch.rand((), generator=generator).item()
    new_height, new_width = max(1, round(height * scale)), max(1, round(width * scale))
    top = int(torch.randint(0, height - new_height + 1, (), generator=generator))
    left = int(torch.randint(0, width - new_width + 1, (), generator=generator))
    pad = (left, width - new_width - left, top, height - new_height - top)

    def reshape(images: torch.Tensor) -> torch.Tensor:
        small = F.interpolate(images, size=(new_height, new_width), mode="bilinear",
                              align_corners=False)
        return F.pad(small, pad)

    return reshape(clean), reshape(adversarial)


class InputDiversity(View):
    """The pair resized and padded with probability `strength`."""

    name = "diversity"

    def __call__(self, clean: torch.Tensor, adversarial: torch.Tensor,
                 draws: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return diverse_pair(clean, adversarial, self.strength, draws)
