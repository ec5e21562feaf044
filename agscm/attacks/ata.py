"""ATA, the attention-guided transfer attack (Wu et al., "Boosting the Transferability of
Adversarial Samples via Attention", CVPR 2020), with our differentiable Grad-CAM as attention."""

from __future__ import annotations

import torch
from torch import nn

from agscm.attacks.pgd import PGD
from agscm.models.gradcam import GradCAM, gradcam_distance


class ATA(PGD):
    """I-FGSM (PGD without random start by default) on `J(x', y) + lambda_ata * ||S(x) - S(x')||_2`.

    J is the cross-entropy, S the Grad-CAM map of the true class at `layer` (default: the
    model's declared Grad-CAM layer, else its last Conv2d), S(x) a constant. Pushing the
    attention away from where the source model looks is what makes the examples transfer.
    The distance is `gradcam_distance(normalize=True)` (maps over the clean peak, summed over
    pixels, as in the AEG-GC loss), so lambda_ata means the same on every model: raw map scales
    differ by 10x between our MNIST CNNs. lambda_ata=1 on MNIST's 14x14 maps equals the weight
    14 on the per-pixel mean, where the map moved 10-15% further than under I-FGSM with
    white-box success unchanged.
    The map is differentiable through its channel weights too (second order).
    Distance: L-inf (default) or L2. Arguments: eps, alpha (step), steps, lambda_ata (weight of
    the attention term), layer, random_start, norm.
    Shapes: images (N, C, H, W) in [0, 1], labels (N,) -> adversarial (N, C, H, W).
    """

    name = "ata"

    def __init__(self, model: nn.Module, eps: float = 0.3, alpha: float = 0.01, steps: int = 40,
                 lambda_ata: float = 1.0, layer: str | None = None, random_start: bool = False,
                 norm: str = "linf") -> None:
        super().__init__(model, eps, alpha, steps, random_start, norm)
        self.lambda_ata = float(lambda_ata)
        self.gradcam = GradCAM(model, layer)
        self.layer = self.gradcam.layer_name

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        clean_maps, _ = self.gradcam(images, labels, create_graph=False)
        return self.ascend(images, lambda adversarial: self._gradient(adversarial, labels,
                                                                      clean_maps))

    def _gradient(self, adversarial: torch.Tensor, labels: torch.Tensor,
                  clean_maps: torch.Tensor) -> torch.Tensor:
        adversarial = adversarial.detach().requires_grad_(True)
        maps, logits = self.gradcam(adversarial, labels)
        # clamp: the L2 norm has no gradient at 0, which is where the first step starts
        distance = gradcam_distance(clean_maps, maps, normalize=True)
        attention = distance.clamp_min(1e-12).sqrt().mean()
        loss = nn.functional.cross_entropy(logits, labels) + self.lambda_ata * attention
        return torch.autograd.grad(loss, adversarial)[0]
