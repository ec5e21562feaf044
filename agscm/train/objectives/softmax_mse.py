"""Squared error between the softmax and the one-hot label, one of the paper's loss_f:
L_adv = -||softmax(z(x')) - onehot(y)||^2 (untargeted), bounded where CE is not."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from agscm.train.objectives.base import Objective, SourcePass


class SoftmaxSquaredError(Objective):
    name = "mse"
    log_key = "adv"

    def term(self, view: SourcePass) -> torch.Tensor:
        assert view.logits is not None, "the trainer computes what `needs` asks for"
        one_hot = F.one_hot(view.goal, view.logits.shape[1]).to(view.logits.dtype)
        loss = (view.logits.softmax(dim=1) - one_hot).pow(2).sum(dim=1).mean()
        return loss if view.targeted else -loss
