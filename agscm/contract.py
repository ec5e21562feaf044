"""The ONNX contract between `agscm export` and the torch-free runtime (DESIGN §4).

Imports nothing heavy: both sides, and `agscm info`, read the names and metadata keys from here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

INPUT_NAME = "image"
OUTPUT_NAME = "adversarial"
PERTURBATION_NAME = "perturbation"
OPSET = 17  # the lowest opset an exported generator may use
SIZE_MULTIPLE = 4  # the generator downsamples twice by 2

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
SUPPORTED_CHANNELS = {1: "L", 3: "RGB"}  # model channels -> the Pillow mode images convert to


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
        if props.get("precision", "fp32") not in PRECISIONS:
            raise ValueError(f"unknown precision {props['precision']!r} in agscm metadata")
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
            raise ValueError(f"malformed agscm metadata: {exc}") from None
