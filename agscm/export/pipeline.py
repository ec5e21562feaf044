"""`agscm export` as one call: checkpoint -> verified fp32 ONNX, then optional fp16/int8 variants.

Every file appears only after it has passed its checks (written to a temp name, checked,
renamed). Variants report their error against fp32 and what they change in the source
model's accuracy on the generated images, both on real test images.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import onnx
import torch

from agscm.atomic import atomic_path
from agscm.contract import SIZE_MULTIPLE, GeneratorMetadata
from agscm.data import load_split
from agscm.errors import AgscmError
from agscm.export.metadata import metadata_from_checkpoint
from agscm.export.onnx_export import ContractModule, check, export_generator, set_metadata
from agscm.export.variants import to_fp16, to_int8
from agscm.export.verify import ParityCheck, check_parity
from agscm.models.generator_checkpoint import load_generator
from agscm.models.registry import load_classifier
from agscm.runtime.arrays import pad_to_multiple
from agscm.runtime.model import GeneratorModel

PARITY_IMAGES = 64
CALIBRATION_IMAGES = 256
EVAL_BATCH = 100


@dataclass
class VariantReport:
    """One written file: its size, build time, speed, and (for variants) its cost."""

    precision: str
    path: Path
    size_bytes: int
    build_seconds: float
    ms_per_image: float | None = None
    max_error: float | None = None  # max |variant - fp32| of the adversarial images
    mean_error: float | None = None
    source_accuracy: float | None = None  # source model's accuracy on the generated images


@dataclass
class ExportReport:
    metadata: GeneratorMetadata
    data: str
    parity: list[ParityCheck]
    variants: list[VariantReport] = field(default_factory=list)
    source: str | None = None
    clean_accuracy: float | None = None
    eval_images: int = 0


def variant_path(output: Path, precision: str) -> Path:
    """`G.onnx` -> `G.fp16.onnx`."""
    return output.with_name(f"{output.stem}.{precision}{output.suffix}")


def export_checkpoint(checkpoint: Path, output: Path, *, data: str | None = None,
                      zoo_dir: Path | None = None, fp16: bool = False, int8: bool = False,
                      eval_images: int = 500) -> ExportReport:
    """Export, verify, and optionally add variants; returns what the summary shows.

    The checks read `data` [default: the data set in the training config, else the tag in
    the metadata].
    """
    generator, meta, _ = load_generator(checkpoint)
    metadata = metadata_from_checkpoint(checkpoint, meta)
    data = data or str(meta["train"].get("data") or metadata.dataset)
    test = load_split(data, "test")
    if test.channels != metadata.channels:
        raise AgscmError(f"{data}: {test.channels}-channel images, but the generator takes "
                         f"{metadata.channels}; pass --data with the data set it was trained on")
    images = pad_to_multiple(test.subset(PARITY_IMAGES).as_float(), SIZE_MULTIPLE)
    source = _load_source(metadata, zoo_dir) if fp16 or int8 else None  # fail before the work
    output.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    model = export_generator(generator, metadata, images[:2])
    with atomic_path(output) as temp:
        onnx.save(model, temp)
        parity = check_parity(temp, ContractModule(generator), images)
    report = ExportReport(metadata, data, parity)
    report.variants.append(VariantReport("fp32", output, output.stat().st_size,
                                         time.perf_counter() - start))
    if source is not None:
        report.source = metadata.source_models[0]
        _add_variants(report, model, output, data, source, fp16, int8, eval_images)
    return report


def _load_source(metadata: GeneratorMetadata, zoo_dir: Path | None) -> torch.nn.Module:
    """The first source model: the variants report what they change in its accuracy."""
    if not metadata.source_models:
        raise AgscmError("the checkpoint names no source model to measure the variants with")
    return load_classifier(metadata.source_models[0], zoo_dir)[0]


def _add_variants(report: ExportReport, model: onnx.ModelProto, output: Path, data: str,
                  classifier: torch.nn.Module, fp16: bool, int8: bool, eval_images: int) -> None:
    """Write the requested variants and measure every file on the same real test images."""
    test = load_split(data, "test").subset(eval_images)
    images = test.as_float()
    report.eval_images = len(test)
    report.clean_accuracy = _accuracy(classifier, images, test.labels)
    fp32 = report.variants[0]
    reference = _measure(fp32, images, classifier, test.labels)
    for precision in [name for name, wanted in (("fp16", fp16), ("int8", int8)) if wanted]:
        path = variant_path(output, precision)
        start = time.perf_counter()
        with atomic_path(path) as temp:
            if precision == "fp16":
                onnx.save(to_fp16(model), temp)
            else:  # calibrated on training images, measured on test images
                calibration = load_split(data, "train").subset(CALIBRATION_IMAGES).as_float()
                to_int8(output, temp, pad_to_multiple(calibration, SIZE_MULTIPLE))
            variant = onnx.load(str(temp))
            set_metadata(variant, replace(report.metadata, precision=precision))
            check(variant, f"{precision} variant")
            onnx.save(variant, temp)
            row = VariantReport(precision, path, temp.stat().st_size, time.perf_counter() - start)
            adversarial = _measure(row, images, classifier, test.labels, temp)
        diff = np.abs(adversarial - reference)
        row.max_error, row.mean_error = float(diff.max()), float(diff.mean())
        report.variants.append(row)


def _measure(row: VariantReport, images: np.ndarray, classifier: torch.nn.Module,
             labels: np.ndarray, path: Path | None = None) -> np.ndarray:
    """Run the file (through the runtime's loader) on `images`: speed and source accuracy."""
    model = GeneratorModel(path or row.path, device="cpu")
    start = time.perf_counter()
    adversarial = np.concatenate([model.run(images[i:i + EVAL_BATCH])
                                  for i in range(0, len(images), EVAL_BATCH)])
    row.ms_per_image = 1000 * (time.perf_counter() - start) / max(len(images), 1)
    row.source_accuracy = _accuracy(classifier, adversarial, labels)
    return adversarial


@torch.no_grad()
def _accuracy(classifier: torch.nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    correct = 0
    for i in range(0, len(images), EVAL_BATCH):
        logits = classifier(torch.from_numpy(images[i:i + EVAL_BATCH]))
        correct += int((logits.argmax(1).numpy() == labels[i:i + EVAL_BATCH]).sum())
    return correct / max(len(images), 1)
