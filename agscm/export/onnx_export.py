"""Trace a generator to an ONNX graph that fulfils the contract (agscm.contract).

The dynamo exporter (torch.export) is used: on this generator it gives a graph of the model's
own ops only (Conv, InstanceNormalization, reflect Pad, ...), 28 nodes for the smallest
generator against 69 with the TorchScript exporter, which adds Constant/Identity/Reshape/
Slice chains around every reflect pad. Both keep batch, height and width dynamic. It writes
opset 18: its converter down to 17 has no adapter for Pad.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import onnx
import torch
from torch import nn

from agscm.contract import INPUT_NAME, OPSET, OUTPUT_NAME, PERTURBATION_NAME, GeneratorMetadata
from agscm.errors import AgscmError
from agscm.models.generator import Generator

EXPORT_OPSET = max(OPSET, 18)
# torch.onnx logs one warning per torchvision op it cannot register when torchvision is absent;
# a generator uses no torchvision op, and agscm does not need torchvision.
_REGISTRATION_LOGGER = "torch.onnx._internal.exporter._registration"
_TORCHVISION_ABSENT = "torchvision is not installed"


class ContractModule(nn.Module):
    """What the graph computes: `adversarial` = clip(x + delta, 0, 1) and the bounded delta."""

    def __init__(self, generator: Generator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        delta = self.generator.perturbation(image)
        return (image + delta).clamp(0, 1), delta


def set_metadata(model: onnx.ModelProto, metadata: GeneratorMetadata) -> None:
    """Replace `metadata_props` with the agscm metadata."""
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, metadata.to_props())


def check(model: onnx.ModelProto, what: str) -> None:
    """onnx's full checker (with shape inference); a failure is an AgscmError, not a warning."""
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise AgscmError(f"{what}: the ONNX checker rejected the graph ({exc})") from None


@contextmanager
def _without_torchvision_notes() -> Iterator[None]:
    """Drop torch.onnx's "torchvision is not installed" warnings; its other records pass."""
    logger = logging.getLogger(_REGISTRATION_LOGGER)

    def keep(record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_TORCHVISION_ABSENT)

    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


def export_generator(generator: Generator, metadata: GeneratorMetadata,
                     sample: np.ndarray) -> onnx.ModelProto:
    """Trace `generator` on `sample` (float32 NCHW, >= 2 images) into a checked ModelProto."""
    module = ContractModule(generator).eval()
    batch, height, width = (torch.export.Dim(name) for name in ("batch", "height", "width"))
    with warnings.catch_warnings(), _without_torchvision_notes():
        warnings.simplefilter("ignore")  # torch.export's notes on its own internals
        program = torch.onnx.export(
            module, (torch.from_numpy(sample),), dynamo=True, opset_version=EXPORT_OPSET,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME, PERTURBATION_NAME],
            dynamic_shapes={"image": {0: batch, 2: height, 3: width}}, verbose=False)
    model = program.model_proto
    set_metadata(model, metadata)
    check(model, "fp32 export")
    return model
