"""`train_generator(config)`: the AEG-GC training loop against one or more source classifiers.

Each epoch: minimise L_noise + sum_s w_s (L_adv,s + lambda L_gradcam,s) over the training
split, then validate on the test split (source accuracy on x', L-inf/L2 of delta, Grad-CAM
distance). The checkpoint (weights, Adam state, history) and a JSON log are rewritten
atomically after every epoch; `resume=True` continues from the last finished epoch and gives
the same weights as an uninterrupted run (the data order is seeded per epoch).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from agscm import __version__
from agscm.data import ImageSet, load_split
from agscm.data.budget import default_eps
from agscm.data.registry import dataset_tag
from agscm.errors import AgscmError
from agscm.models.batches import batch_count, iterate_batches, iterate_indexed_batches
from agscm.models.checkpoint import (
    file_digest,
    optimizer_from_tensors,
    optimizer_to_tensors,
    require_same_config,
)
from agscm.models.generator import Generator, GeneratorConfig
from agscm.models.generator_checkpoint import load_generator, save_generator
from agscm.models.gradcam import GradCAM, gradcam_distance, shape_distance
from agscm.models.registry import load_classifier
from agscm.progress import format_metrics, make_progress
from agscm.train.losses import ADV_LOSSES, adversarial_loss, gradcam_loss, noise_loss


@dataclass
class SourceSpec:
    """One source classifier: a zoo name or checkpoint path, its Grad-CAM layer and weight."""

    model: str
    layer: str | None = None
    weight: float = 1.0


@dataclass
class TrainConfig:
    """Everything `agscm train` takes; saved in the checkpoint and the ONNX metadata."""

    data: str
    out: str
    sources: list[SourceSpec] = field(default_factory=lambda: [SourceSpec("mnist-natural")])
    zoo_dir: str | None = None
    eps: float | None = None  # None: 0.3 for grey data, 8/255 for colour
    norm: str = "linf"
    c: float | None = None  # hinge bound on ||delta||_2; None: 0.75 * eps * sqrt(C*H*W)
    loss: str = "ce"
    kappa: float = 0.0
    lambda_gradcam: float = 0.5
    first_order: bool = False
    cam_normalize: bool = True  # divide maps by the clean map's peak (scale-free lambda)
    target_class: int | None = None  # None: untargeted (true label)
    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    width: int = 8
    residual_blocks: int = 4
    train_limit: int | None = None
    val_limit: int | None = 1000
    device: str = "cpu"

    def validate(self) -> None:
        if self.eps is not None and not self.eps > 0:
            raise AgscmError(f"eps must be > 0, got {self.eps}")
        if self.lambda_gradcam < 0:
            raise AgscmError(f"lambda must be >= 0, got {self.lambda_gradcam}")
        if self.loss not in ADV_LOSSES:
            raise AgscmError(f"unknown loss {self.loss!r}; choose one of {', '.join(ADV_LOSSES)}")
        if self.c is not None and self.c < 0:
            raise AgscmError(f"the hinge bound c must be >= 0, got {self.c}")
        if not self.sources:
            raise AgscmError("give at least one source model")
        if any(s.weight <= 0 for s in self.sources):
            raise AgscmError("source weights must be > 0")
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise AgscmError("epochs and batch size must be >= 1 and lr > 0")


@dataclass
class GeneratorCheckpoint:
    """What training returns: the saved file, its metadata and the trained generator."""

    path: Path
    meta: dict[str, Any]
    generator: Generator


@dataclass
class LoadedSource:
    """A source classifier ready for the loss: frozen model, its Grad-CAM, its weight."""

    name: str
    model: nn.Module
    cam: GradCAM
    weight: float
    digest: str  # sha256 of the checkpoint, so a resumed generator keeps the same sources


def load_sources(config: TrainConfig, data: ImageSet) -> list[LoadedSource]:
    zoo = Path(config.zoo_dir) if config.zoo_dir else None
    sources = []
    for spec in config.sources:
        model, meta = load_classifier(spec.model, zoo, device=config.device)
        model_channels = meta["model"]["channels"]
        if model_channels != data.channels:
            raise AgscmError(f"source {spec.model!r} takes {model_channels}-channel images but "
                             f"{config.data} has {data.channels}")
        sources.append(LoadedSource(meta["name"], model,
                                    GradCAM(model, spec.layer, first_order=config.first_order),
                                    spec.weight, file_digest(Path(meta["path"]))))
    return sources


def resolve_config(config: TrainConfig, data: ImageSet) -> TrainConfig:
    eps = config.eps if config.eps is not None else default_eps(data.channels)
    dims = data.channels * data.size[0] * data.size[1]
    c = config.c if config.c is not None else 0.75 * eps * math.sqrt(dims)
    if config.target_class is not None and not 0 <= config.target_class < len(data.classes):
        raise AgscmError(f"target class {config.target_class} is not in 0..{len(data.classes) - 1}")
    return TrainConfig(**{**asdict(config), "eps": eps, "c": c,
                          "sources": [SourceSpec(**asdict(s)) for s in config.sources]})


CLEAN_MAP_BUDGET_BYTES = 1 << 30  # above this the clean maps are recomputed every step


def clean_map_cache(sources: list[LoadedSource], data: ImageSet,
                    config: TrainConfig) -> list[torch.Tensor] | None:
    """Every training image's clean Grad-CAM map for each source, computed once.

    They stay constant while the generator trains, and recomputing them took about a fifth
    of each step. None when lambda is 0 or the maps would not fit the memory budget.
    """
    if config.lambda_gradcam == 0:
        return None
    images, labels = next(iterate_batches(data.subset(1), 1, device=config.device))
    per_image = sum(s.cam(images, labels, create_graph=False)[0].numel() for s in sources)
    if per_image * len(data) * 4 > CLEAN_MAP_BUDGET_BYTES:
        return None
    return [torch.cat([source.cam(images, labels, create_graph=False)[0] for images, labels
                       in iterate_batches(data, 250, device=config.device)]) for source in sources]


def step_loss(generator: Generator, sources: list[LoadedSource], images: torch.Tensor,
              labels: torch.Tensor, config: TrainConfig,
              clean_maps: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss of one batch and its terms (for the progress bar).

    `clean_maps`: this batch's clean Grad-CAM maps per source, if cached; else computed here.
    """
    assert config.c is not None
    targeted = config.target_class is not None
    goal = torch.full_like(labels, config.target_class) if targeted else labels
    delta = generator.perturbation(images)
    adversarial = (images + delta).clamp(0, 1)
    l_noise = noise_loss(delta, config.c)
    l_adv = torch.zeros(())
    l_cam = torch.zeros(())
    for index, source in enumerate(sources):
        if config.lambda_gradcam > 0:
            clean = (clean_maps[index] if clean_maps is not None
                     else source.cam(images, labels, create_graph=False)[0])
            adv_maps, logits = source.cam(adversarial, goal, create_graph=True)
            distance = (shape_distance(clean, adv_maps) if targeted
                        else gradcam_distance(clean, adv_maps, config.cam_normalize))
            l_cam = l_cam + source.weight * gradcam_loss(distance, targeted)
        else:
            logits = source.model(adversarial)
        l_adv = l_adv + source.weight * adversarial_loss(logits, goal, config.loss, config.kappa,
                                                         targeted)
    total = l_noise + l_adv + config.lambda_gradcam * l_cam
    return total, {"loss": total.item(), "noise": l_noise.item(), "adv": l_adv.item(),
                   "gradcam": l_cam.item()}


def _validate(generator: Generator, sources: list[LoadedSource], data: ImageSet,
              config: TrainConfig) -> dict[str, float]:
    generator.eval()
    correct = {s.name: 0 for s in sources}
    linf = l2 = cam_distance = 0.0
    for images, labels in iterate_batches(data, 250, device=config.device):
        with torch.no_grad():
            delta = generator.perturbation(images)
            adversarial = (images + delta).clamp(0, 1)
        linf += delta.flatten(1).abs().amax(dim=1).sum().item()
        l2 += delta.flatten(1).norm(dim=1).sum().item()
        for index, source in enumerate(sources):
            adv_maps, logits = source.cam(adversarial, labels, create_graph=False)
            correct[source.name] += int((logits.argmax(1) == labels).sum())
            if index == 0:
                clean_maps, _ = source.cam(images, labels, create_graph=False)
                cam_distance += gradcam_distance(clean_maps, adv_maps,
                                                 config.cam_normalize).sum().item()
    generator.train()
    count = len(data)
    row = {f"val_acc[{name}]": hits / count for name, hits in correct.items()}
    return {**row, "delta_linf": linf / count, "delta_l2": l2 / count,
            "gradcam_distance": cam_distance / count}


def _write_json(path: Path, payload: Any) -> None:
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(handle, "w") as stream:
        json.dump(payload, stream, indent=2)
    os.replace(temp, path)


def log_path(checkpoint: Path) -> Path:
    """Where the per-epoch JSON log of a generator checkpoint lives."""
    return checkpoint.with_suffix(".log.json")


def train_generator(config: TrainConfig, resume: bool = True) -> GeneratorCheckpoint:
    """Train an AEG-GC generator as `config` says; returns the final checkpoint."""
    config.validate()
    train_set = load_split(config.data, "train").subset(config.train_limit)
    val_set = load_split(config.data, "test").subset(config.val_limit)
    config = resolve_config(config, train_set)
    assert config.eps is not None
    sources = load_sources(config, train_set)
    torch.manual_seed(config.seed)
    generator = Generator(GeneratorConfig(channels=train_set.channels, width=config.width,
                                          residual_blocks=config.residual_blocks,
                                          eps=config.eps, norm=config.norm)).to(config.device)
    optimizer = torch.optim.Adam(generator.parameters(), lr=config.lr)
    out = Path(config.out)
    record: dict[str, Any] = {
        "agscm_version": __version__, "dataset": dataset_tag(config.data),
        "image_size": list(train_set.size), "classes": train_set.classes,
        "sources": [s.name for s in sources], "lambda": config.lambda_gradcam,
        "source_sha256": [s.digest for s in sources],
        "train": asdict(config), "epoch": 0, "history": []}
    if out.exists():
        if not resume:
            raise AgscmError(f"{out} exists; pass --resume to continue it or choose another --out")
        generator, record, optimizer = _resume(out, config, record["source_sha256"])
    if record["epoch"] >= config.epochs:
        return GeneratorCheckpoint(out, {**record, "kind": "generator"}, generator.eval())
    generator.train()
    cached_maps = clean_map_cache(sources, train_set, config)
    steps_per_epoch = batch_count(train_set, config.batch_size)
    with make_progress() as progress:
        for epoch in range(record["epoch"], config.epochs):
            order = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
            task = progress.add_task(f"generator epoch {epoch + 1}/{config.epochs}",
                                     total=steps_per_epoch, metrics="")
            start = time.perf_counter()
            sums: dict[str, float] = {}
            for step, (index, images, labels) in enumerate(iterate_indexed_batches(
                    train_set, config.batch_size, shuffle=True, generator=order,
                    device=config.device), start=1):
                clean_maps = (None if cached_maps is None
                              else [maps[torch.from_numpy(index)] for maps in cached_maps])
                loss, terms = step_loss(generator, sources, images, labels, config, clean_maps)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                sums = {k: sums.get(k, 0.0) + v for k, v in terms.items()}
                progress.update(task, advance=1, metrics=format_metrics(
                    {k: v / step for k, v in sums.items()}))
            seconds = time.perf_counter() - start
            progress.remove_task(task)
            row = {"epoch": epoch + 1, **{k: v / steps_per_epoch for k, v in sums.items()},
                   "seconds": seconds, "images_per_second": len(train_set) / seconds,
                   **_validate(generator, sources, val_set, config)}
            record["history"].append(row)
            record["epoch"] = epoch + 1
            optim_tensors, record["optimizer"] = optimizer_to_tensors(optimizer.state_dict())
            save_generator(out, generator, record, optim_tensors)
            _write_json(log_path(out), record["history"])
            progress.console.print(f"epoch {epoch + 1}/{config.epochs}: " + format_metrics(
                {k: v for k, v in row.items() if k not in ("epoch", "seconds")}))
    return GeneratorCheckpoint(out, {**record, "kind": "generator"}, generator.eval())


def _resume(out: Path, config: TrainConfig,
            source_sha256: list[str]) -> tuple[Generator, dict[str, Any], torch.optim.Adam]:
    generator, record, tensors = load_generator(out, config.device)
    require_same_config(out, record["train"], asdict(config))
    if record.get("source_sha256", source_sha256) != source_sha256:  # older files lack it
        raise AgscmError(f"{out}: was trained against other weights of its source models "
                         f"({', '.join(record['sources'])}); delete it or choose another --out")
    record["train"]["epochs"] = config.epochs
    generator.train()
    optimizer = torch.optim.Adam(generator.parameters(), lr=config.lr)
    if "optimizer" in record:
        optimizer.load_state_dict(optimizer_from_tensors(tensors, record["optimizer"]))
    return generator, record, optimizer
