"""Generator checkpoints: weights + GeneratorConfig + training record, safetensors only."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from agscm.errors import AgscmError
from agscm.models.checkpoint import load_checkpoint, save_checkpoint, split_prefix
from agscm.models.generator import Generator, GeneratorConfig

KIND = "generator"


def save_generator(path: Path, generator: Generator, record: dict[str, Any],
                   extra_tensors: dict[str, torch.Tensor] | None = None) -> None:
    """Write the generator; `record` carries the training config, epoch, history, data and sources.

    Required record keys (read by export and the ONNX metadata): `dataset` (str),
    `image_size` ([H, W]), `sources` (list of model names), `lambda` (float), `train` (dict).
    """
    meta = {**record, "kind": KIND, "generator": asdict(generator.config)}
    tensors = {f"model.{k}": v for k, v in generator.state_dict().items()}
    save_checkpoint(path, {**tensors, **(extra_tensors or {})}, meta)


def load_generator(path: Path, device: str | torch.device = "cpu"
                   ) -> tuple[Generator, dict[str, Any], dict[str, torch.Tensor]]:
    """Rebuild a generator in eval mode; returns (generator, meta, all tensors for resuming)."""
    tensors, meta = load_checkpoint(path)
    if meta.get("kind") != KIND:
        raise AgscmError(f"{path}: not a generator checkpoint (kind {meta.get('kind')!r})")
    generator = Generator(GeneratorConfig(**meta["generator"]))
    try:
        generator.load_state_dict(split_prefix(tensors, "model"))
    except RuntimeError as exc:
        raise AgscmError(f"{path}: weights do not fit the saved generator config ({exc})") from None
    return generator.to(device).eval(), meta, tensors
