"""Mid-layer features weighted by the true class's Grad-CAM channel weights (the idea of FIA,
Wang et al., ICCV 2021, and NAA, with AEG-GC's Grad-CAM as the weighting):

    L = mean_i  sum_k w_ik A_ik(x'_i)  /  |sum_k w_ik A_ik(x_i)|       (minimised)

with A_ik the spatial mean of channel k at the feature layer and w_i the unit vector of the
clean image's Grad-CAM weights for its true class (aggregated over randomly masked copies).
Plain feature separation moves every channel; this one lowers the channels that speak for the
true class and raises those that speak against it, which is what transfers between models
that share features. Dividing by the clean response makes it scale-free: 1 is the clean image,
below 0 the weighted evidence for the true class has turned against it. The weights do not
depend on the generator, so the trainer computes them once per training image and source.
"""

from __future__ import annotations

import torch

from agscm.train.objectives.base import Needs, Objective, SourcePass


def weighted_feature_loss(adversarial_features: torch.Tensor, clean_features: torch.Tensor,
                          weights: torch.Tensor) -> torch.Tensor:
    """Mean over images of <w, pooled A(x')> / |<w, pooled A(x)>| (features (N, C, h, w),
    weights (N, C))."""
    adversarial = (weights * adversarial_features.mean(dim=(2, 3))).sum(dim=1)
    clean = (weights * clean_features.detach().mean(dim=(2, 3))).sum(dim=1)
    return (adversarial / clean.abs().clamp_min(1e-6)).mean()


class GradcamWeightedFeatures(Objective):
    name = "gradcam-feature"
    log_key = "gradcam-feature"
    needs = Needs(logits=False, features=True, channel_weights=True)

    def term(self, view: SourcePass) -> torch.Tensor:
        assert view.adversarial_features is not None and view.clean_features is not None
        assert view.channel_weights is not None
        return weighted_feature_loss(view.adversarial_features, view.clean_features,
                                     view.channel_weights)
