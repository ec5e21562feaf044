"""Reading a named layer's activations during a forward pass, for objectives that compare
mid-layer features (agscm.train.objectives.feature_distortion). The layer is looked up by
module name, never evaluated."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from agscm.errors import AgscmError
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


class _LayerReached(Exception):
    """Raised by the hook of `forward_to` to cut the forward pass off after its layer."""


def forward_to(model: nn.Module, layer: str, images: torch.Tensor) -> torch.Tensor:
    """The named layer's output on `images`, computing nothing after it: a source truncated at
    that layer, so an objective of its features pays for the layers up to it only (forward,
    and backward to the input)."""
    _, module = resolve_layer(model, layer)
    store: list[torch.Tensor] = []

    def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        store.append(output)
        raise _LayerReached

    handle = module.register_forward_hook(hook)
    try:
        model(images)
    except _LayerReached:
        pass
    finally:
        handle.remove()
    if not store:
        raise AgscmError(f"layer {layer!r} was not used in the forward pass")
    return store[0]
