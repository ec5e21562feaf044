"""Decoded images -> adversarial uint8 images: tiles of equal size batched into model calls.

Every model call holds at most BATCH_PIXELS pixels, one default tile (64 CIFAR-10 images), so
memory does not grow with the images' size or the batch size.
Each image's tiles are cut out, run, and their cores pasted back (agscm.runtime.tiles); the
L-inf bound is kept in 8-bit steps against the clean pixels (agscm.runtime.arrays.quantize).
"""

from __future__ import annotations

import numpy as np

from agscm.runtime.arrays import quantize, to_float
from agscm.runtime.model import GeneratorModel
from agscm.runtime.session import ORT_ERRORS
from agscm.runtime.tiles import DEFAULT_TILE, Tile, tile_grid

BATCH_PIXELS = DEFAULT_TILE**2


def perturb_images(model: GeneratorModel, images: list[np.ndarray], tile: int,
                   batch_size: int) -> list[np.ndarray | str]:
    """uint8 (H, W, C) images -> their adversarial uint8 images, or, for an image the model
    could not run (out of memory on a huge one, say), the reason as a string."""
    outputs: list[np.ndarray | str] = [np.empty_like(values) for values in images]
    groups: dict[tuple[int, int], list[tuple[int, Tile]]] = {}
    for index, values in enumerate(images):
        for piece in tile_grid(*values.shape[:2], tile):
            groups.setdefault(piece.shape, []).append((index, piece))
    for (height, width), pieces in groups.items():
        step = max(1, min(batch_size, BATCH_PIXELS // (height * width)))
        for start in range(0, len(pieces), step):
            _run(model, images, outputs, pieces[start:start + step])
    return outputs


def _run(model: GeneratorModel, images: list[np.ndarray], outputs: list[np.ndarray | str],
         pieces: list[tuple[int, Tile]]) -> None:
    clean = np.stack([images[index][top:bottom, left:right]
                      for index, (top, bottom, left, right) in ((i, p.region) for i, p in pieces)])
    try:
        adversarial = quantize(model.run(to_float(clean)), clean, model.linf_eps)
    except (*ORT_ERRORS, MemoryError) as exc:
        for index, _ in pieces:
            outputs[index] = f"the model failed on this image ({exc})"
        return
    for values, (index, piece) in zip(adversarial, pieces, strict=True):
        output = outputs[index]
        if isinstance(output, str):
            continue
        top, bottom, left, right = piece.core
        rows, cols = top - piece.region[0], left - piece.region[2]
        output[top:bottom, left:right] = values[rows:rows + bottom - top,
                                                cols:cols + right - left]
