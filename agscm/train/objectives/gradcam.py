"""L_gradcam (AEG-GC eq. 13): the negative distance between the clean and adversarial
Grad-CAM maps, so minimising it pushes the saliency map away from the clean one. Targeted
mode pulls the target class's map onto the clean true-class map instead (+distance of shapes).
The adversarial map is built with create_graph, so the term's gradient reaches the generator
through the channel weights too (unless --first-order)."""

from __future__ import annotations

import torch

from agscm.models.gradcam import gradcam_distance, shape_distance
from agscm.train.objectives.base import Needs, Objective, SourcePass


def gradcam_loss(distance: torch.Tensor, targeted: bool = False) -> torch.Tensor:
    """L_gradcam from per-image distances: -mean(distance) pushes maps apart (untargeted);
    targeted mode pulls the target class's map onto the clean true-class map: +mean(distance)."""
    return distance.mean() if targeted else -distance.mean()


class GradcamDistance(Objective):
    name = "gradcam"
    log_key = "gradcam"
    needs = Needs(gradcam=True)

    def term(self, view: SourcePass) -> torch.Tensor:
        clean, adversarial = view.clean_maps, view.adversarial_maps
        assert clean is not None and adversarial is not None
        distance = (shape_distance(clean, adversarial) if view.targeted
                    else gradcam_distance(clean, adversarial, self.settings.cam_normalize))
        return gradcam_loss(distance, view.targeted)
