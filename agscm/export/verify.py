"""Export checks itself: onnxruntime (through the runtime's own loader) against PyTorch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from agscm.contract import INPUT_NAME, SIZE_MULTIPLE
from agscm.errors import AgscmError
from agscm.export.onnx_export import ContractModule
from agscm.runtime.arrays import pad_to_multiple
from agscm.runtime.model import GeneratorModel

TOLERANCE = 1e-5  # max |onnxruntime - torch| in fp32


@dataclass
class ParityCheck:
    shape: tuple[int, ...]
    max_diff: float


def parity_batches(images: np.ndarray) -> list[np.ndarray]:
    """The real batch at its own size, 2x upsampled, and a non-square crop: three sizes."""
    base = pad_to_multiple(images, SIZE_MULTIPLE)
    few = base[:8]
    height, width = base.shape[-2:]
    crop_h = max(SIZE_MULTIPLE, height // 2 // SIZE_MULTIPLE * SIZE_MULTIPLE)
    crop_w = max(SIZE_MULTIPLE, width * 3 // 4 // SIZE_MULTIPLE * SIZE_MULTIPLE)
    upsampled = few.repeat(2, axis=2).repeat(2, axis=3)
    return [base, upsampled, np.ascontiguousarray(few[..., :crop_h, :crop_w])]


def check_parity(path: Path, module: ContractModule, images: np.ndarray) -> list[ParityCheck]:
    """Both outputs of the ONNX file at `path` vs `module` on real images at three sizes.

    Raises AgscmError when any value differs by more than TOLERANCE.
    """
    session = GeneratorModel(path, device="cpu").session
    checks = []
    for batch in parity_batches(images):
        with torch.no_grad():
            expected = [t.numpy() for t in module(torch.from_numpy(batch))]
        got = session.run(None, {INPUT_NAME: batch})
        diff = max(float(np.abs(g - e).max()) for g, e in zip(got, expected, strict=True))
        if not diff <= TOLERANCE:
            raise AgscmError(f"{path}: onnxruntime differs from PyTorch by {diff:.3g} on a "
                             f"{tuple(batch.shape)} batch (limit {TOLERANCE:g})")
        checks.append(ParityCheck(tuple(batch.shape), diff))
    return checks
