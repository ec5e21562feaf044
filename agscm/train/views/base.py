"""What an input view is: a random change of the clean and adversarial batch, the same for
both, that the sources see during training and the generator never does (so the exported
model is unchanged). A perturbation that must fool the sources under such changes leans less
on one model's exact view of the image, which is what transfers. A new view is one file with
one class, plus its line in agscm.train.views.registry.
"""

from __future__ import annotations

from typing import ClassVar

import torch


class View:
    """A view of strength `strength` (for most, the probability that a batch is changed);
    its draws come from the trainer's per-epoch CPU generator, so a resumed run repeats them."""

    name: ClassVar[str]

    def __init__(self, strength: float) -> None:
        self.strength = strength

    def __call__(self, clean: torch.Tensor, adversarial: torch.Tensor,
                 draws: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError
