"""Smaller variants of an exported generator: fp16 weights and compute, and int8 convolutions.

fp16 uses the float16 converter that ships inside onnxruntime (the same code as
onnxconverter-common, without its protobuf pin), keeping float32 inputs/outputs so the
contract holds, and ReduceL2 (the L2 bound sums squares over a whole image, which overflows
fp16) in float32; its output lists nodes out of order, so the graph is sorted afterwards.
int8 is onnxruntime's static QDQ quantisation of the Conv/ConvTranspose layers only, with
per-channel weights, calibrated on real images: the image path and the bound stay float32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnxscript import ir

from agscm.contract import INPUT_NAME

FP32_OPS = ("ReduceL2",)
CALIBRATION_BATCH = 32


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """An fp16 copy of `model` with float32 input and outputs."""
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    half = convert_float_to_float16(model, keep_io_types=True,
                                    op_block_list=[*DEFAULT_OP_BLOCK_LIST, *FP32_OPS])
    graph = ir.from_proto(half)
    graph.graph.sort()
    return ir.to_proto(graph)


def to_int8(source: Path, target: Path, calibration: np.ndarray) -> None:
    """Quantise the fp32 model file `source` into `target`, calibrated on float32 NCHW images.

    onnxruntime's pre-processing runs first, as its quantiser asks; its symbolic shape
    inference is skipped, because it gives up on the dynamic height and width of reflect pads.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(np.array_split(calibration, max(1, len(calibration)
                                                                // CALIBRATION_BATCH)))

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {INPUT_NAME: np.ascontiguousarray(batch)}

    quant_pre_process(source, target, skip_symbolic_shape=True)
    quantize_static(onnx.load(target), target, Reader(), quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=["Conv", "ConvTranspose"], per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
