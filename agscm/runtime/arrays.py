"""numpy helpers shared by the runtime and export: padding to the size multiple, 8-bit pixels,
and the distortion measures of the manifest."""

from __future__ import annotations

import math

import numpy as np

from agscm.contract import linf_steps


def padded_size(height: int, width: int, multiple: int) -> tuple[int, int]:
    """The smallest (H, W) >= the given size whose sides are multiples of `multiple`."""
    return -(-height // multiple) * multiple, -(-width // multiple) * multiple


def pad_to_multiple(batch: np.ndarray, multiple: int) -> np.ndarray:
    """Reflect-pad an NCHW batch on the bottom and right so H and W are multiples of `multiple`.

    Reflection (not zeros) keeps the border statistics natural, so InstanceNorm and the
    generator see an image like the ones it was trained on; the caller crops the padding away.
    """
    height, width = batch.shape[-2:]
    target_h, target_w = padded_size(height, width, multiple)
    if (target_h, target_w) == (height, width):
        return batch
    return np.pad(batch, ((0, 0), (0, 0), (0, target_h - height), (0, target_w - width)),
                  mode="reflect")


def to_float(pixels: np.ndarray) -> np.ndarray:
    """uint8 NHWC -> float32 NCHW in [0, 1]."""
    return np.ascontiguousarray(pixels.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255)


def to_uint8(images: np.ndarray) -> np.ndarray:
    """float32 NCHW in [0, 1] -> uint8 NHWC, rounded to nearest."""
    scaled = np.multiply(images, np.float32(255), dtype=np.float32)
    np.rint(scaled, out=scaled)
    np.clip(scaled, 0, 255, out=scaled)
    return np.ascontiguousarray(scaled.astype(np.uint8).transpose(0, 2, 3, 1))


def quantize(adversarial: np.ndarray, clean: np.ndarray, linf_eps: float | None) -> np.ndarray:
    """Adversarial float32 NCHW -> uint8 NHWC that keeps the L-inf bound in 8-bit steps.

    Rounding alone can step past eps (0.3 * 255 = 76.5 rounds to 77), so with an L-inf
    budget the result is also kept within floor(eps * 255) steps of the uint8 `clean` (NHWC),
    with saturating uint8 arithmetic (no wide temporaries).
    """
    values = to_uint8(adversarial)
    if linf_eps is None:
        return values
    budget = linf_steps(linf_eps)
    if budget >= 255:
        return values
    np.minimum(values, np.minimum(clean, 255 - budget) + np.uint8(budget), out=values)
    np.maximum(values, np.maximum(clean, budget) - np.uint8(budget), out=values)
    return values


def distortion(clean: np.ndarray, adversarial: np.ndarray) -> dict[str, float | None]:
    """L-inf, L2 (over all values, [0,1] scale) and PSNR in dB (None when identical) of two
    uint8 arrays, exact: integer differences, squares summed in uint64."""
    steps = np.maximum(clean, adversarial)
    steps -= np.minimum(clean, adversarial)
    squares16 = steps.astype(np.uint16)
    np.multiply(squares16, squares16, out=squares16)  # <= 255**2 fits
    squares = int(squares16.sum(dtype=np.uint64))
    mse = squares / (steps.size * 255.0 ** 2)
    return {
        "linf": int(steps.max()) / 255.0,
        "l2": math.sqrt(squares) / 255.0,
        "psnr": 10 * math.log10(1 / mse) if mse > 0 else None,
    }
