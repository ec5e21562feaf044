"""The ONNX contract between `agscm export` and the torch-free runtime (docs/ARCHITECTURE.md).

Imports nothing heavy: both sides, and `agscm info`, read the names and metadata keys from here.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

INPUT_NAME = "image"
OUTPUT_NAME = "adversarial"
PERTURBATION_NAME = "perturbation"
OPSET = 17  # the lowest opset an exported generator may use
SIZE_MULTIPLE = 4  # a generator downsamples at most twice by 2

# metadata_props keys; every value is a string, JSON where structured.
REQUIRED_KEYS = (
    "agscm_version",
    "channels",
    "eps",
    "norm",
    "train_size",
    "size_multiple",
    "dataset",
    "source_models",
    "lambda",
    "config",
)
PRECISIONS = ("fp32", "fp16", "int8")  # optional key `precision`; absent means fp32
NORMS = ("linf", "l2")
SUPPORTED_CHANNELS = {1: "L", 3: "RGB"}  # model channels -> the Pillow mode images convert to


def linf_steps(eps: float) -> int:
    """An L-inf budget in 8-bit steps: floor(eps * 255), with a hair of slack so that an eps
    written as k/255 gives k. Every saved 8-bit image keeps within this many steps of its clean
    pixels (the web page's `linfBudget` is the same rule, tested against this one)."""
    return int(math.floor(eps * 255 + 1e-6))


@dataclass(frozen=True)
class GeneratorMetadata:
    """What the runtime needs to know about an exported generator."""

    agscm_version: str
    channels: int
    eps: float
    norm: str
    train_size: tuple[int, int]
    size_multiple: int
    dataset: str
    source_models: list[str]
    lambda_gradcam: float
    config: dict[str, Any]
    precision: str = "fp32"

    def __post_init__(self) -> None:
        """Refuse values the runtime cannot honour (ValueError naming the field): a model
        whose bound is NaN, negative or of an unknown norm must not run at all."""
        if not isinstance(self.channels, int) or self.channels < 1:
            raise ValueError(f"channels must be a whole number >= 1, got {self.channels!r}")
        if self.norm not in NORMS:
            raise ValueError(f"unknown norm {self.norm!r} (expected one of {', '.join(NORMS)})")
        if not (isinstance(self.eps, (int, float)) and math.isfinite(self.eps) and self.eps > 0):
            raise ValueError(f"eps must be a finite number > 0, got {self.eps!r}")
        if self.norm == "linf" and self.eps > 1:
            raise ValueError(f"an L-inf eps must be <= 1 on [0,1] pixels, got {self.eps!r}")
        if len(self.train_size) != 2 or min(self.train_size) < 1:
            raise ValueError(f"train_size must be two sides >= 1, got {list(self.train_size)}")
        if self.size_multiple < 1:
            raise ValueError(f"size_multiple must be >= 1, got {self.size_multiple}")
        if not (math.isfinite(self.lambda_gradcam) and self.lambda_gradcam >= 0):
            raise ValueError(f"lambda must be a finite number >= 0, got {self.lambda_gradcam!r}")
        if not all(isinstance(name, str) for name in self.source_models):
            raise ValueError("source_models must be a list of names")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r} "
                             f"(expected one of {', '.join(PRECISIONS)})")

    def to_props(self) -> dict[str, str]:
        """Flatten to the string map stored in ONNX `metadata_props`."""
        return {
            "agscm_version": self.agscm_version,
            "channels": str(self.channels),
            "eps": repr(float(self.eps)),
            "norm": self.norm,
            "train_size": json.dumps(list(self.train_size)),
            "size_multiple": str(self.size_multiple),
            "dataset": self.dataset,
            "source_models": json.dumps(self.source_models),
            "lambda": repr(float(self.lambda_gradcam)),
            "config": json.dumps(self.config, sort_keys=True),
            "precision": self.precision,
        }

    @classmethod
    def from_props(cls, props: dict[str, str]) -> GeneratorMetadata:
        """Parse `metadata_props`; raises ValueError naming the first missing or bad key."""
        missing = [key for key in REQUIRED_KEYS if key not in props]
        if missing:
            raise ValueError(f"missing agscm metadata keys: {', '.join(missing)}")
        try:
            height, width = json.loads(props["train_size"])
            return cls(
                agscm_version=props["agscm_version"],
                channels=int(props["channels"]),
                eps=float(props["eps"]),
                norm=props["norm"],
                train_size=(int(height), int(width)),
                size_multiple=int(props["size_multiple"]),
                dataset=props["dataset"],
                source_models=list(json.loads(props["source_models"])),
                lambda_gradcam=float(props["lambda"]),
                config=dict(json.loads(props["config"])),
                precision=props.get("precision", "fp32"),
            )
        except (ValueError, TypeError) as exc:
            raise ValueError(f"bad agscm metadata: {exc}") from None
