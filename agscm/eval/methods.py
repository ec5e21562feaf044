"""The attacks a transfer table compares, behind one interface.

A method crafts adversarial float32 images for a data split and says how fast it did so.
`aeg-gc` is a trained generator (a `.safetensors` checkpoint, or an exported `.onnx` run
through the torch-free runtime): one forward pass per batch; its rows are labelled by the recipe
it was trained with (`aeg-gc` for the paper's, `aeg-gc-transfer` for the transfer recipe).
The baselines (`fgsm`, `pgd`, `mifgsm`, `ata`) are gradient attacks against a source model
(or an ensemble's mean logits), named with options as
`NAME[:KEY=VALUE,...]`, e.g. `pgd:steps=20,alpha=0.02`.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from agscm.attacks.craft import CraftResult, CraftStore, craft
from agscm.attacks.registry import ATTACKS, attack_settings, make_attack
from agscm.data import ImageSet
from agscm.errors import AgscmError
from agscm.models.batches import batch_count
from agscm.progress import format_metrics, make_progress

GENERATOR_METHOD = "aeg-gc"
BASELINES = tuple(ATTACKS)
METHOD_NAMES = (GENERATOR_METHOD, *BASELINES)


@dataclass(frozen=True)
class MethodSpec:
    """A method by name with its options (sorted, so equal specs compare equal)."""

    name: str
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def label(self) -> str:
        """How the method is written in tables and on the command line."""
        if not self.options:
            return self.name
        return f"{self.name}:" + ",".join(f"{key}={value}" for key, value in self.options)


def parse_method(text: str) -> MethodSpec:
    """`NAME[:KEY=VALUE,...]` -> MethodSpec; values become bool, int, float or str."""
    name, _, rest = text.partition(":")
    name = name.strip().lower()
    if name not in METHOD_NAMES:
        raise AgscmError(f"unknown method {name!r}; choose one of {', '.join(METHOD_NAMES)}")
    options: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise AgscmError(f"bad method option {item!r} in {text!r}; expected "
                             "NAME:KEY=VALUE,...")
        options[key.strip().replace("-", "_")] = _parse_value(value.strip())
    if name == GENERATOR_METHOD and options:
        raise AgscmError(f"{GENERATOR_METHOD} takes no options here; its settings are those the "
                         "generator was trained with")
    return MethodSpec(name, tuple(sorted(options.items())))


def _parse_value(text: str) -> Any:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_generator(text: str) -> tuple[str, Path]:
    """`SOURCE=PATH` -> (source label, generator path)."""
    label, sep, path = text.partition("=")
    if not sep or not label.strip() or not path.strip():
        raise AgscmError(f"bad generator {text!r}; expected SOURCE=PATH (e.g. "
                         "mnist-adv=runs/g-adv.safetensors)")
    return label.strip(), Path(path.strip())


def check_fits(data: ImageSet, meta: dict[str, Any]) -> None:
    """A data set a classifier cannot read is a one-line error, not a shape traceback."""
    channels, size = meta["model"]["channels"], tuple(meta["model"]["image_size"])
    if data.channels != channels or data.size != size:
        raise AgscmError(f"{data.name}: images are {data.channels}x{data.size[0]}x{data.size[1]} "
                         f"but model {meta['name']} expects {channels}x{size[0]}x{size[1]}")


class Method(ABC):
    """One way to craft adversarial images; `settings` and `files` identify its output."""

    label: str

    @abstractmethod
    def settings(self) -> dict[str, Any]:
        """Every setting that changes the output (JSON-able), for reports and the cache key."""

    @abstractmethod
    def files(self) -> list[Path]:
        """The checkpoints the output depends on."""

    @abstractmethod
    def craft(self, data: ImageSet, batch_size: int, progress: bool = True,
              store: CraftStore | None = None) -> CraftResult:
        """Adversarial float32 (N, C, H, W) images for `data`, in order, with the crafting speed;
        `store` lets a long craft resume (agscm.attacks.craft)."""


class BaselineMethod(Method):
    """A gradient baseline against one source classifier; random starts are seeded."""

    def __init__(self, spec: MethodSpec, model: nn.Module, model_paths: list[Path], eps: float,
                 channels: int, seed: int = 0) -> None:
        self.label = spec.label
        self.attack = make_attack(spec.name, model, eps, channels=channels, **dict(spec.options))
        self.model_paths = [Path(path) for path in model_paths]
        self.seed = seed

    def settings(self) -> dict[str, Any]:
        return {"method": self.attack.name, **attack_settings(self.attack), "seed": self.seed}

    def files(self) -> list[Path]:
        return list(self.model_paths)

    def craft(self, data: ImageSet, batch_size: int, progress: bool = True,
              store: CraftStore | None = None) -> CraftResult:
        torch.manual_seed(self.seed)
        return craft(self.attack, data, batch_size, progress, store)


@dataclass(frozen=True)
class GeneratorInfo:
    """What a generator file says about itself."""

    channels: int
    eps: float
    norm: str
    sources: list[str]
    lambda_gradcam: float
    recipe: str = "paper"


def generator_label(recipe: str) -> str:
    """The table label of a generator trained with `recipe`: `aeg-gc` for the paper's."""
    return GENERATOR_METHOD if recipe == "paper" else f"{GENERATOR_METHOD}-{recipe}"


class GeneratorMethod(Method):
    """AEG-GC: a trained generator, `.safetensors` (torch) or `.onnx` (agscm.runtime)."""

    def __init__(self, path: Path, device: str = "cpu") -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise AgscmError(f"{self.path}: generator not found")
        if self.path.suffix == ".onnx":
            self.info, self._apply = _onnx_generator(self.path, device)
        else:
            self.info, self._apply = _torch_generator(self.path, device)
        self.label = generator_label(self.info.recipe)

    def settings(self) -> dict[str, Any]:
        return {"method": GENERATOR_METHOD, "format": self.path.suffix.lstrip("."),
                "eps": self.info.eps, "norm": self.info.norm, "sources": self.info.sources,
                "lambda": self.info.lambda_gradcam, "recipe": self.info.recipe}

    def files(self) -> list[Path]:
        return [self.path]

    def craft(self, data: ImageSet, batch_size: int, progress: bool = True,
              store: CraftStore | None = None) -> CraftResult:
        """One forward pass per batch: a test set takes seconds, so it keeps no progress."""
        if data.channels != self.info.channels:
            raise AgscmError(f"{self.path}: generator takes {self.info.channels}-channel images "
                             f"but {data.name} has {data.channels}")
        adversarial = np.empty(data.images.shape, dtype=np.float32)
        start = time.perf_counter()
        with make_progress(transient=True, disable=not progress) as bar:
            task = bar.add_task(f"{GENERATOR_METHOD} {self.path.name}",
                                total=batch_count(data, batch_size), metrics="")
            for begin in range(0, len(data), batch_size):
                clean = data.images[begin:begin + batch_size].astype(np.float32) / 255.0
                adversarial[begin:begin + len(clean)] = self._apply(clean)
                rate = (begin + len(clean)) / max(time.perf_counter() - start, 1e-9)
                bar.update(task, advance=1, metrics=format_metrics({"img/s": rate}))
        seconds = time.perf_counter() - start
        return CraftResult(adversarial, seconds, len(data) / max(seconds, 1e-9))


Apply = Callable[[np.ndarray], np.ndarray]


def _torch_generator(path: Path, device: str) -> tuple[GeneratorInfo, Apply]:
    from agscm.models.generator_checkpoint import load_generator

    generator, meta, _ = load_generator(path, device)

    def apply(clean: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return generator(torch.from_numpy(clean).to(device)).cpu().numpy()

    config = generator.config
    return GeneratorInfo(config.channels, config.eps, config.norm, list(meta["sources"]),
                         float(meta["lambda"]), meta.get("recipe", "paper")), apply


def _onnx_generator(path: Path, device: str) -> tuple[GeneratorInfo, Apply]:
    from agscm.runtime import Perturber

    perturber = Perturber(path, device="cuda" if device.startswith("cuda") else "cpu")
    meta = perturber.metadata
    recipe = str(meta.config.get("train", {}).get("recipe", "paper"))  # export: {generator, train}
    return GeneratorInfo(meta.channels, meta.eps, meta.norm, list(meta.source_models),
                         meta.lambda_gradcam, recipe), perturber.perturb_array
