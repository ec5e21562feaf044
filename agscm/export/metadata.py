"""The ONNX metadata of a generator, read from its checkpoint record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agscm import __version__
from agscm.contract import SIZE_MULTIPLE, GeneratorMetadata
from agscm.errors import AgscmError

_RECORD_KEYS = ("generator", "dataset", "image_size", "sources", "lambda", "train")


def metadata_from_checkpoint(path: Path, meta: dict[str, Any]) -> GeneratorMetadata:
    """GeneratorMetadata from the record `save_generator` wrote (the training config as JSON)."""
    missing = [key for key in _RECORD_KEYS if key not in meta]
    if missing:
        raise AgscmError(f"{path}: generator checkpoint lacks {', '.join(missing)}; "
                         "was it written by agscm train?")
    generator = meta["generator"]
    height, width = meta["image_size"]
    return GeneratorMetadata(
        agscm_version=__version__,
        channels=int(generator["channels"]),
        eps=float(generator["eps"]),
        norm=str(generator["norm"]),
        train_size=(int(height), int(width)),
        size_multiple=SIZE_MULTIPLE,
        dataset=str(meta["dataset"]),
        source_models=[str(name) for name in meta["sources"]],
        lambda_gradcam=float(meta["lambda"]),
        config={"generator": generator, "train": meta["train"]},
    )
