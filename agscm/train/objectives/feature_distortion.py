"""Mid-layer feature distortion (LTP: Salzmann et al., NeurIPS 2021; BIA: Zhang et al., ICLR 2022):
push a chosen layer's features of x' away from those of x.

    L_feat = mean_i cos( A_l(x_i'), A_l(x_i) )     (minimised)

Mid-level features are shared across architectures far more than logits are, so perturbations
that wreck them transfer better; cosine similarity makes the term scale-free, so one weight
means the same on every source.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from agscm.train.objectives.base import Needs, Objective, SourcePass


def feature_loss(adversarial_features: torch.Tensor, clean_features: torch.Tensor) -> torch.Tensor:
    """Mean cosine similarity of each image's flattened features (1 = untouched, -1 = reversed)."""
    return F.cosine_similarity(adversarial_features.flatten(1),
                               clean_features.detach().flatten(1), dim=1).mean()


class FeatureDistortion(Objective):
    name = "feature"
    log_key = "feature"
    needs = Needs(logits=False, features=True)

    def term(self, view: SourcePass) -> torch.Tensor:
        assert view.adversarial_features is not None and view.clean_features is not None
        return feature_loss(view.adversarial_features, view.clean_features)
