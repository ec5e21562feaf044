"""Mid-layer feature distortion (LTP: Salzmann et al., NeurIPS 2021; BIA: Zhang et al., ICLR 2022):
push a chosen layer's features of x' away from those of x.

    L_feat = mean_i cos( A_l(x_i'), A_l(x_i) )     (minimised)

Mid-level features are shared across architectures far more than logits are, so perturbations
that wreck them transfer better; cosine similarity makes the term scale-free, so one weight
means the same on every source. The layer is looked up by module name, never evaluated.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn import functional as F

from agscm.models.gradcam import resolve_layer


@contextmanager
def capture_features(model: nn.Module, layer: str | None) -> Iterator[list[torch.Tensor]]:
    """Collect the named layer's outputs during forward passes run inside the block (None:
    collect nothing); the hook is removed on exit, even on error."""
    store: list[torch.Tensor] = []
    if layer is None:
        yield store
        return
    _, module = resolve_layer(model, layer)
    handle = module.register_forward_hook(lambda _m, _i, output: store.append(output))
    try:
        yield store
    finally:
        handle.remove()


def feature_loss(adversarial_features: torch.Tensor, clean_features: torch.Tensor) -> torch.Tensor:
    """Mean cosine similarity of each image's flattened features (1 = untouched, -1 = reversed)."""
    return F.cosine_similarity(adversarial_features.flatten(1),
                               clean_features.detach().flatten(1), dim=1).mean()
