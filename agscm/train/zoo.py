"""Train the classifier zoo: `natural`, `adv` (adversarial training) and `secret` (adv, other seed),
in any registered architecture, so transfer can be measured across architectures too.

One checkpoint per model holds weights, optimizer state and per-epoch history, rewritten
atomically after every epoch, so an interrupted run resumes from its last finished epoch.
Training steps run in float32 or in bfloat16 autocast (agscm.train.precision: bf16 by default on
CUDA, fp32 on CPU); each epoch records the precision it ran in, and the reported accuracies are
always measured in float32.
"""

from __future__ import annotations

import math
import shlex
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from agscm.attacks.pgd import PGD
from agscm.data import ImageSet, load_split
from agscm.data.budget import default_eps
from agscm.errors import AgscmError
from agscm.locks import exclusive
from agscm.models.batches import (
    AUGMENTATIONS,
    accuracy,
    augment,
    batch_count,
    channel_stats,
    iterate_batches,
)
from agscm.models.catalog import CATALOG_NAME, is_catalogued, read_catalog, verify_file
from agscm.models.checkpoint import (
    load_checkpoint,
    optimizer_from_tensors,
    optimizer_to_tensors,
    read_meta,
    require_same_config,
    save_checkpoint,
    split_prefix,
)
from agscm.models.classifiers import ARCHITECTURES, build_classifier, classifier_config
from agscm.models.registry import SUFFIX, config_from_meta
from agscm.progress import format_metrics, make_progress
from agscm.provenance import source_commit
from agscm.train.precision import autocast, for_precision, resolve_precision

KINDS = ("natural", "adv", "secret")
ADV_METHODS = ("fgsm-rs", "pgd")
OPTIMIZERS = ("adam", "sgd")
DEFAULT_SEEDS = {"natural": 0, "adv": 1, "secret": 2}
ROBUST_CHECK_IMAGES = 500  # test images attacked after each adversarial-training epoch


@dataclass
class ZooConfig:
    """How one zoo model is trained; saved in its checkpoint as JSON."""

    data: str
    kind: str = "natural"
    arch: str | None = None  # None: MadryLab CNN for grey data, the small ResNet for colour
    width: int | None = None  # None: the architecture's own default
    epochs: int = 4
    batch_size: int = 128
    optimizer: str = "adam"  # adam, or sgd (Nesterov momentum 0.9)
    lr: float = 1e-3  # peak: linear warm-up over warmup_epochs, then cosine decay to 1%
    warmup_epochs: float = 0.0
    weight_decay: float = 0.0
    augment: str = "none"  # none, noise, shift (random translation) or shift-flip
    eps: float | None = None  # None: the dataset's budget (0.3 for 1 channel, 8/255 for colour)
    adv_method: str = "pgd"
    adv_steps: int = 7  # PGD steps (adv_method pgd)
    adv_step_size: float | None = None  # None: 1.25*eps for fgsm-rs, 2.5*eps/steps for pgd
    eps_warmup_epochs: int = 1  # ramp eps linearly over these epochs (avoids early collapse)
    seed: int | None = None  # None: 0 natural, 1 adv, 2 secret
    train_limit: int | None = None  # use only the first N training images

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise AgscmError(f"unknown zoo kind {self.kind!r}; choose one of {', '.join(KINDS)}")
        if self.arch is not None and self.arch not in ARCHITECTURES:
            raise AgscmError(f"unknown architecture {self.arch!r}; choose one of "
                             f"{', '.join(sorted(ARCHITECTURES))}")
        if self.adv_method not in ADV_METHODS:
            raise AgscmError(f"unknown adversarial training method {self.adv_method!r}; choose "
                             f"one of {', '.join(ADV_METHODS)}")
        if self.optimizer not in OPTIMIZERS:
            raise AgscmError(f"unknown optimizer {self.optimizer!r}; choose one of "
                             f"{', '.join(OPTIMIZERS)}")
        if self.augment not in AUGMENTATIONS:
            raise AgscmError(f"unknown augmentation {self.augment!r}; choose one of "
                             f"{', '.join(AUGMENTATIONS)}")
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise AgscmError("epochs and batch size must be >= 1 and lr > 0")
        if self.adv_steps < 1 or self.weight_decay < 0 or self.warmup_epochs < 0:
            raise AgscmError("adversarial steps must be >= 1, weight decay and warm-up >= 0")
        if self.eps is not None and not 0 < self.eps <= 1:
            raise AgscmError(f"eps must be in (0, 1] for [0,1] pixels, got {self.eps}")
        if self.adv_step_size is not None and not 0 < self.adv_step_size <= 1:
            raise AgscmError(f"adversarial step size must be in (0, 1] for [0,1] pixels, got "
                             f"{self.adv_step_size}")
        if self.train_limit is not None and self.train_limit < 1:
            raise AgscmError(f"train limit must be >= 1, got {self.train_limit}")


_FIELDS = {f.name for f in fields(ZooConfig)}


def _config_of(train: dict[str, Any]) -> ZooConfig:
    """A checkpoint's `train` dict as a config (keys of older versions left out)."""
    return ZooConfig(**{k: v for k, v in train.items() if k in _FIELDS})


def _resolved(config: ZooConfig, channels: int) -> ZooConfig:
    eps = config.eps if config.eps is not None else default_eps(channels)
    steps = config.adv_steps if config.adv_method == "pgd" else 1
    step = config.adv_step_size
    if step is None:
        step = 1.25 * eps if config.adv_method == "fgsm-rs" else 2.5 * eps / steps
    seed = config.seed if config.seed is not None else DEFAULT_SEEDS[config.kind]
    return ZooConfig(**{**asdict(config), "eps": eps, "adv_steps": steps,
                        "adv_step_size": step, "seed": seed})


def train_command(train: dict[str, Any], name: str, zoo: str = "runs/zoo") -> str:
    """The `agscm zoo train` line that trains this config (a checkpoint's `train` dict, resolved
    or not) into `<zoo>/<name>.safetensors`: only the flags that differ from their defaults."""
    config = _config_of(train)
    channels = 1 if config.eps == default_eps(1) else 3
    # the command line's own defaults, resolved as training resolves them
    defaults = _resolved(ZooConfig(config.data, kind=config.kind, eps=None), channels)
    # the step a command without --adv-step-size would take, given this config's eps and steps
    implied_step = _resolved(replace(config, adv_step_size=None), channels).adv_step_size
    flags = [f"--kind {config.kind}"] if config.kind != "natural" else []
    for key, value in asdict(config).items():
        if key in ("data", "kind") or value is None or (
                key == "adv_steps" and config.adv_method != "pgd"):  # single-step: no count
            continue
        if key == "adv_step_size":
            if config.kind != "natural" and not math.isclose(value, implied_step):
                flags.append(f"--adv-step-size {value!r}")
        elif value != getattr(defaults, key):
            flags.append(f"--{key.replace('_', '-')} {shlex.quote(str(value))}")
    return " ".join([f"agscm zoo train {shlex.quote(config.data)}", *flags,
                     f"--name {shlex.quote(name)}", f"--zoo {shlex.quote(zoo)}"])


def catalogued_model(zoo: Path, name: str, config: ZooConfig, channels: int) -> Path:
    """The catalogued zoo's `name`, checked (sha256) and refused in one line unless it was
    trained as `config` says (the data's path aside), so a table that names a spec's model
    never measures another one."""
    models = read_catalog(zoo)
    if name not in models:
        raise AgscmError(f"no model {name!r} in the catalog {zoo / CATALOG_NAME}; train it "
                         f"with: {train_command(asdict(config), name)}, then add it with "
                         "agscm zoo publish")
    verify_file(zoo, name, models[name])
    path = zoo / models[name]["file"]
    recorded = _config_of(read_meta(path)["train"])
    wanted, trained = (asdict(_resolved(c, channels)) for c in (config, recorded))
    differ = [f"{key} {trained[key]!r} (wanted {wanted[key]!r})" for key in wanted
              if key != "data" and wanted[key] != trained[key]]
    if differ:
        raise AgscmError(f"{path}: catalogued {name} was trained otherwise: {', '.join(differ)}; "
                         "use a zoo with the wanted model (e.g. --zoo runs/zoo)")
    return path


def learning_rate(config: ZooConfig, progress_in_epochs: float) -> float:
    """Linear warm-up to `lr` over `warmup_epochs`, then cosine decay to 1% at the end."""
    if progress_in_epochs < config.warmup_epochs:
        return config.lr * max(progress_in_epochs / config.warmup_epochs, 0.01)
    span = max(config.epochs - config.warmup_epochs, 1e-9)
    done = min((progress_in_epochs - config.warmup_epochs) / span, 1.0)
    return config.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(done * math.pi)))


def _make_optimizer(model: nn.Module, config: ZooConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9, nesterov=True,
                               weight_decay=config.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def _adversarial_batch(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                       config: ZooConfig, progress_in_epochs: float) -> torch.Tensor:
    assert config.eps is not None and config.adv_step_size is not None
    ramp = min(1.0, progress_in_epochs / config.eps_warmup_epochs) if config.eps_warmup_epochs else 1
    eps = max(config.eps * ramp, 1e-4)
    attack = PGD(model, eps=eps, alpha=config.adv_step_size * eps / config.eps,
                 steps=config.adv_steps, random_start=True)
    return attack(images, labels)  # the attack evaluates in eval mode, then restores the mode


def train_classifier(config: ZooConfig, out_path: Path, device: str = "cpu",
                     test_limit: int | None = None, stop_after_epoch: int | None = None,
                     precision: str | None = None) -> Path:
    """Train (or resume) one zoo model into `out_path`; returns the checkpoint path.

    `stop_after_epoch` ends this run after that epoch of the `epochs`-long schedule, so a long
    run goes on part by part (another session, another machine): each part resumes from the
    last checkpoint, and every epoch reseeds, so the parts end where one run would, bit for bit.
    """
    config.validate()
    if is_catalogued(out_path.parent):
        raise AgscmError(f"{out_path.parent} is a catalogued zoo (it has {CATALOG_NAME}); train "
                         "into another folder (e.g. --zoo runs/zoo), then add the finished "
                         "model with agscm zoo publish")
    if stop_after_epoch is not None and stop_after_epoch < 1:
        raise AgscmError(f"stop after epoch {stop_after_epoch}: must be >= 1")
    if test_limit is not None and test_limit < 1:
        raise AgscmError(f"test limit must be >= 1, got {test_limit}")
    precision = resolve_precision(precision, device)
    train_set = load_split(config.data, "train").subset(config.train_limit)
    test_set = load_split(config.data, "test").subset(test_limit)
    if len(train_set.classes) < 2:
        raise AgscmError(f"{config.data}: {len(train_set.classes)} class "
                         f"({', '.join(train_set.classes)}); a classifier needs two or more")
    commit = source_commit()  # now, while the code that runs is the checkout's
    with exclusive(out_path, "training"):
        return _train_classifier(config, out_path, device, precision, train_set, test_set,
                                 stop_after_epoch, commit)


def _train_classifier(config: ZooConfig, out_path: Path, device: str, precision: str,
                      train_set: ImageSet, test_set: ImageSet, stop_after_epoch: int | None,
                      commit: str | None) -> Path:
    config = _resolved(config, train_set.channels)
    assert config.seed is not None
    torch.manual_seed(config.seed)
    model_config = classifier_config(train_set.channels, train_set.size, len(train_set.classes),
                                     *channel_stats(train_set), arch=config.arch,
                                     width=config.width)
    model = build_classifier(model_config).to(device)
    optimizer = _make_optimizer(model, config)
    meta: dict[str, Any] = {"kind": "classifier", "name": out_path.name[: -len(SUFFIX)],
                            "model": asdict(model_config), "train": asdict(config),
                            "classes": train_set.classes, "epoch": 0, "history": []}
    if out_path.exists():
        meta, model, optimizer = _resume(out_path, config, device)
        if meta["epoch"] >= config.epochs:
            return out_path
    model = for_precision(model, precision)
    with make_progress() as progress:
        for epoch in range(meta["epoch"], min(config.epochs, stop_after_epoch or config.epochs)):
            torch.manual_seed(config.seed + 7919 * epoch)  # PGD's random starts
            draws = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
            row = _train_epoch(model, optimizer, train_set, config, epoch, draws, device,
                               precision, progress)
            row["test_acc"] = accuracy(model, test_set, device=device)
            if config.kind != "natural":
                row["pgd10_acc"] = robust_accuracy(model, test_set.subset(ROBUST_CHECK_IMAGES),
                                                   config, device)
            meta["history"].append({**row, "device": str(device), "precision": precision,
                                    "commit": commit})
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
                 config: ZooConfig, epoch: int, draws: torch.Generator, device: str,
                 precision: str, progress: Any) -> dict[str, float]:
    model.train()
    batches = batch_count(data, config.batch_size)
    task = progress.add_task(f"{config.kind} epoch {epoch + 1}/{config.epochs}", total=batches,
                             metrics="")
    start = time.perf_counter()
    seen = 0
    correct = torch.zeros((), dtype=torch.long, device=device)
    loss_sum = torch.zeros((), device=device)
    for step, (images, labels) in enumerate(
            iterate_batches(data, config.batch_size, shuffle=True, generator=draws,
                            device=device)):
        done = epoch + step / batches
        images = augment(images, config.augment, draws, noise=config.eps)
        with autocast(device, precision):
            if config.kind != "natural":
                images = _adversarial_batch(model, images, labels, config, done)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config, done)
            logits = model(images)
            loss = nn.functional.cross_entropy(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += len(labels)
        correct += (logits.argmax(1) == labels).sum()
        loss_sum += loss.detach() * len(labels)
        if step % 20 == 0 or step == batches - 1:  # a host sync; rarely, so the GPU stays busy
            progress.update(task, completed=step + 1, metrics=format_metrics(
                {"loss": loss_sum.item() / seen, "train_acc": correct.item() / seen}))
    progress.remove_task(task)
    return {"epoch": epoch + 1, "loss": loss_sum.item() / seen, "train_acc": correct.item() / seen,
            "seconds": time.perf_counter() - start}


def _resume(path: Path, config: ZooConfig,
            device: str) -> tuple[dict[str, Any], nn.Module, torch.optim.Optimizer]:
    tensors, meta = load_checkpoint(path)
    if meta.get("kind") != "classifier":
        raise AgscmError(f"{path}: exists and is not a zoo checkpoint; choose another name")
    require_same_config(path, meta["train"], config)
    meta["train"]["epochs"] = config.epochs
    model = build_classifier(config_from_meta(meta)).to(device)
    model.load_state_dict(split_prefix(tensors, "model"))
    optimizer = _make_optimizer(model, config)
    if "optimizer" in meta:
        optimizer.load_state_dict(optimizer_from_tensors(tensors, meta["optimizer"]))
    elif meta["epoch"] < config.epochs:
        raise AgscmError(f"{path}: holds no optimizer state (a weights-only copy), so it cannot "
                         "be trained further; train a new model")
    return meta, model, optimizer
