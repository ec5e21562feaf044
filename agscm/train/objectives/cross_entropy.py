"""Cross-entropy, the paper's default loss_f (AEG-GC eq. 11): L_adv = -CE(z(x'), y), so
minimising it fools the source; targeted (goal = target class): +CE."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from agscm.train.objectives.base import Objective, SourcePass


class CrossEntropy(Objective):
    name = "ce"
    log_key = "adv"

    def term(self, view: SourcePass) -> torch.Tensor:
        assert view.logits is not None, "the trainer computes what `needs` asks for"
        loss = F.cross_entropy(view.logits, view.goal)
        return loss if view.targeted else -loss
