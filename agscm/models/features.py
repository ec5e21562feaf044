"""Reading a named layer's activations during a forward pass, for objectives that compare
mid-layer features (agscm.train.objectives.feature_distortion). The layer is looked up by
module name, never evaluated."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

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

