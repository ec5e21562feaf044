"""Relativistic cross-entropy (CDA: Naseer et al., "Cross-Domain Transferability of Adversarial
Perturbations", NeurIPS 2019): the adversarial loss on the *difference* of logits.

    L_rce = -CE(z(x') - z(x), y)

Plain CE saturates once x' is misclassified, so a generator can stop at a universal pattern
that flips the easy images; measuring x' relative to x keeps a gradient on every image until
its true class falls behind the others *relative to where it started*.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from agscm.train.objectives.base import Needs, Objective, SourcePass


def relativistic_loss(adversarial_logits: torch.Tensor, clean_logits: torch.Tensor,
                      labels: torch.Tensor, targeted: bool = False) -> torch.Tensor:
    """L_adv to minimise. Untargeted: -CE(z' - z, y); targeted (labels = targets): +CE."""
    loss = F.cross_entropy(adversarial_logits - clean_logits.detach(), labels)
    return loss if targeted else -loss


class RelativisticCrossEntropy(Objective):
    name = "rce"
    log_key = "adv"
    needs = Needs(clean_logits=True)

    def term(self, view: SourcePass) -> torch.Tensor:
        assert view.logits is not None and view.clean_logits is not None, (
            "the trainer computes what `needs` asks for")
        return relativistic_loss(view.logits, view.clean_logits, view.goal, view.targeted)
