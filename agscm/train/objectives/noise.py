"""L_noise (AEG-GC eq. 10): the soft hinge mean(max(0, ||delta||_2 - c)), free below c and
linear above, which keeps the perturbation small inside the L-inf box. It reads the
perturbation alone, so it is computed once per batch, not per source."""

from __future__ import annotations

import torch

from agscm.train.objectives.base import Needs, Objective


def noise_loss(delta: torch.Tensor, bound: float) -> torch.Tensor:
    """Soft hinge mean(max(0, ||delta||_2 - c)): free below c, linear above."""
    return torch.relu(delta.flatten(1).norm(dim=1) - bound).mean()


class NoiseHinge(Objective):
    name = "noise"
    log_key = "noise"
    per_source = False
    needs = Needs(logits=False)

    def perturbation_term(self, delta: torch.Tensor) -> torch.Tensor:
        return noise_loss(delta, self.settings.noise_bound)
