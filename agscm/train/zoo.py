"""Train the classifier zoo: `natural`, `adv` (adversarial training) and `secret` (adv, other seed).

One checkpoint per model holds weights, optimizer state and per-epoch history, rewritten
atomically after every epoch, so an interrupted run resumes from its last finished epoch.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from agscm.attacks.pgd import PGD
from agscm.data import ImageSet, load_split
from agscm.errors import AgscmError
from agscm.progress import format_metrics, make_progress
from agscm.train.batches import accuracy, batch_count, channel_stats, iterate_batches
from agscm.train.checkpoint import (
    load_checkpoint,
    optimizer_from_tensors,
    optimizer_to_tensors,
    require_same_config,
    save_checkpoint,
    split_prefix,
)
from agscm.train.models import build_classifier, default_classifier_config
from agscm.train.registry import SUFFIX, config_from_meta

KINDS = ("natural", "adv", "secret")
ADV_METHODS = ("fgsm-rs", "pgd")
DEFAULT_SEEDS = {"natural": 0, "adv": 1, "secret": 2}
ROBUST_CHECK_IMAGES = 500  # test images attacked after each adversarial-training epoch


@dataclass
class ZooConfig:
    """How one zoo model is trained; saved in its checkpoint as JSON."""

    data: str
    kind: str = "natural"
    epochs: int = 4
    batch_size: int = 128
    lr: float = 1e-3
    eps: float | None = None  # None: the dataset's budget (0.3 for 1 channel, 8/255 for colour)
    adv_method: str = "fgsm-rs"
    adv_steps: int = 1  # PGD steps (adv_method pgd)
    adv_step_size: float | None = None  # None: 1.25*eps for fgsm-rs, 2.5*eps/steps for pgd
    eps_warmup_epochs: int = 1  # ramp eps linearly over these epochs (avoids early collapse)
    seed: int | None = None  # None: 0 natural, 1 adv, 2 secret
    train_limit: int | None = None  # use only the first N training images

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise AgscmError(f"unknown zoo kind {self.kind!r}; choose one of {', '.join(KINDS)}")
        if self.adv_method not in ADV_METHODS:
            raise AgscmError(f"unknown adversarial training method {self.adv_method!r}; choose "
                             f"one of {', '.join(ADV_METHODS)}")
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise AgscmError("epochs and batch size must be >= 1 and lr > 0")
        if self.eps is not None and not 0 < self.eps <= 1:
            raise AgscmError(f"eps must be in (0, 1] for [0,1] pixels, got {self.eps}")


def default_eps(channels: int) -> float:
    """The MadryLab challenge budgets: 0.3 for MNIST-like data, 8/255 for colour images."""
    return 0.3 if channels == 1 else 8 / 255


def _resolved(config: ZooConfig, channels: int) -> ZooConfig:
    eps = config.eps if config.eps is not None else default_eps(channels)
    steps = config.adv_steps if config.adv_method == "pgd" else 1
    step = config.adv_step_size
    if step is None:
        step = 1.25 * eps if config.adv_method == "fgsm-rs" else 2.5 * eps / steps
    seed = config.seed if config.seed is not None else DEFAULT_SEEDS[config.kind]
    return ZooConfig(**{**asdict(config), "eps": eps, "adv_steps": steps,
                        "adv_step_size": step, "seed": seed})


def _adversarial_batch(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                       config: ZooConfig, progress_in_epochs: float) -> torch.Tensor:
    assert config.eps is not None and config.adv_step_size is not None
    ramp = min(1.0, progress_in_epochs / config.eps_warmup_epochs) if config.eps_warmup_epochs else 1
    eps = max(config.eps * ramp, 1e-4)
    attack = PGD(model, eps=eps, alpha=config.adv_step_size * eps / config.eps,
                 steps=config.adv_steps, random_start=True)
    was_training = model.training
    adversarial = attack(images, labels)  # the attack evaluates in eval mode, then restores
    model.train(was_training)
    return adversarial


def train_classifier(config: ZooConfig, out_path: Path, device: str = "cpu",
                     test_limit: int | None = None) -> Path:
    """Train (or resume) one zoo model into `out_path`; returns the checkpoint path."""
    config.validate()
    train_set = load_split(config.data, "train").subset(config.train_limit)
    test_set = load_split(config.data, "test").subset(test_limit)
    config = _resolved(config, train_set.channels)
    assert config.seed is not None
    torch.manual_seed(config.seed)
    model_config = default_classifier_config(train_set.channels, train_set.size,
                                             len(train_set.classes), *channel_stats(train_set))
    model = build_classifier(model_config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    meta: dict[str, Any] = {"kind": "classifier", "name": out_path.name[: -len(SUFFIX)],
                            "model": asdict(model_config), "train": asdict(config),
                            "classes": train_set.classes, "epoch": 0, "history": []}
    if out_path.exists():
        meta, model, optimizer = _resume(out_path, config, device)
        if meta["epoch"] >= config.epochs:
            return out_path
    generator = torch.Generator().manual_seed(config.seed)
    for _ in range(meta["epoch"]):  # replay the shuffles of finished epochs
        torch.randperm(len(train_set), generator=generator)
    torch.manual_seed(config.seed + 7919 * meta["epoch"])
    scheduler_steps = config.epochs * batch_count(train_set, config.batch_size)
    with make_progress() as progress:
        for epoch in range(meta["epoch"], config.epochs):
            row = _train_epoch(model, optimizer, train_set, config, epoch, generator, device,
                               progress, scheduler_steps)
            row["test_acc"] = accuracy(model, test_set, device=device)
            if config.kind != "natural":
                row["pgd10_acc"] = robust_accuracy(model, test_set.subset(ROBUST_CHECK_IMAGES),
                                                   config, device)
            meta["history"].append(row)
            meta["epoch"] = epoch + 1
            tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
            optim_tensors, optim_rest = optimizer_to_tensors(optimizer.state_dict())
            meta["optimizer"] = optim_rest
            save_checkpoint(out_path, {**tensors, **optim_tensors}, meta)
            progress.console.print(f"{meta['name']} epoch {epoch + 1}/{config.epochs}: "
                                   f"{format_metrics({k: v for k, v in row.items() if k != 'epoch'})}")
    return out_path


def robust_accuracy(model: nn.Module, data: ImageSet, config: ZooConfig, device: str) -> float:
    """Accuracy under PGD-10 at the training eps: FGSM-based adversarial training can collapse
    ("catastrophic overfitting": high FGSM accuracy, none under PGD), and this shows it."""
    assert config.eps is not None
    attack = PGD(model, eps=config.eps, alpha=2.5 * config.eps / 10, steps=10)
    was_training = model.training
    correct = 0
    for images, labels in iterate_batches(data, 250, device=device):
        adversarial = attack(images, labels)
        model.eval()
        with torch.no_grad():
            correct += int((model(adversarial).argmax(1) == labels).sum())
    model.train(was_training)
    return correct / max(len(data), 1)


def _train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, data: ImageSet,
                 config: ZooConfig, epoch: int, generator: torch.Generator, device: str,
                 progress: Any, total_steps: int) -> dict[str, float]:
    model.train()
    batches = batch_count(data, config.batch_size)
    task = progress.add_task(f"{config.kind} epoch {epoch + 1}/{config.epochs}", total=batches,
                             metrics="")
    start = time.perf_counter()
    seen = correct = 0
    loss_sum = 0.0
    for step, (images, labels) in enumerate(
            iterate_batches(data, config.batch_size, shuffle=True, generator=generator,
                            device=device)):
        done = epoch * batches + step
        if config.kind != "natural":
            images = _adversarial_batch(model, images, labels, config, done / batches)
        for group in optimizer.param_groups:  # cosine decay to 1% of lr
            group["lr"] = config.lr * (0.01 + 0.99 * 0.5 * (1 + torch.cos(
                torch.tensor(done / total_steps * torch.pi)).item()))
        logits = model(images)
        loss = nn.functional.cross_entropy(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += len(labels)
        correct += int((logits.argmax(1) == labels).sum())
        loss_sum += loss.item() * len(labels)
        progress.update(task, advance=1, metrics=format_metrics(
            {"loss": loss_sum / seen, "train_acc": correct / seen}))
    progress.remove_task(task)
    return {"epoch": epoch + 1, "loss": loss_sum / seen, "train_acc": correct / seen,
            "seconds": time.perf_counter() - start}


def _resume(path: Path, config: ZooConfig,
            device: str) -> tuple[dict[str, Any], nn.Module, torch.optim.Optimizer]:
    tensors, meta = load_checkpoint(path)
    if meta.get("kind") != "classifier":
        raise AgscmError(f"{path}: exists and is not a zoo checkpoint; choose another name")
    require_same_config(path, meta["train"], asdict(config))
    meta["train"]["epochs"] = config.epochs
    model = build_classifier(config_from_meta(meta)).to(device)
    model.load_state_dict(split_prefix(tensors, "model"))
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    optimizer.load_state_dict(optimizer_from_tensors(tensors, meta["optimizer"]))
    return meta, model, optimizer


def dataset_tag(data: str) -> str:
    """A short name for a data set path: `../shared/data/mnist` -> `mnist`."""
    name = Path(data).name
    for suffix in (".tar.gz", ".tgz", ".tar"):
        name = name.removesuffix(suffix)
    return name or "data"
