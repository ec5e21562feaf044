"""The transfer table: sources x methods crafted once each, scored on every target.

Cells hold the target's accuracy on the adversarial set (lower = stronger), the attack's
success rate on the images that target classified correctly when clean, and the share of all
images the target sends to its most common wrong class (collapse: near 1 when one universal
pattern does the work). A source is a zoo model, or an ensemble `a+b` of zoo models (the
baselines attack the mean of the members' logits), or a label with only generators attached.
Each source may have several generators (one row each, labelled by their recipe). A cell is
white-box when the target is the source, a member of it, or one of the models a generator was
trained against.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from torch import nn

from agscm.data import ImageSet, load_split
from agscm.data.budget import default_eps
from agscm.errors import AgscmError
from agscm.eval.cache import DEFAULT_CACHE_DIR, CraftCache, HashedImages, Scorer, set_key
from agscm.eval.methods import (
    BASELINES,
    GENERATOR_METHOD,
    BaselineMethod,
    GeneratorMethod,
    Method,
    MethodSpec,
    check_fits,
    parse_method,
)
from agscm.eval.scoring import score
from agscm.models.ensemble import ENSEMBLE_SEPARATOR, Ensemble, ensemble_members
from agscm.models.registry import load_classifier, resolve_model_path
from agscm.progress import print_warning


@dataclass
class EvalConfig:
    """What `agscm evaluate` takes; saved with every result."""

    data: str
    sources: list[str]
    targets: list[str] = field(default_factory=list)  # empty: the zoo sources
    methods: list[str] = field(default_factory=list)  # empty: aeg-gc (given generators) + baselines
    generators: dict[str, list[str]] = field(default_factory=dict)  # source label -> files
    zoo_dir: str | None = None
    split: str = "test"
    limit: int | None = None
    eps: float | None = None  # None: 0.3 for grey data, 8/255 for colour
    batch_size: int = 250
    seed: int = 0
    cache_dir: str | None = str(DEFAULT_CACHE_DIR)  # None: craft every time, store nothing
    device: str = "cpu"

    def validate(self) -> None:
        if self.eps is not None and not 0 < self.eps <= 1:
            raise AgscmError(f"eps must be in (0, 1] for [0,1] pixels, got {self.eps}")
        if self.batch_size < 1 or (self.limit is not None and self.limit < 1):
            raise AgscmError(f"batch size and limit must be >= 1, got {self.batch_size} and "
                             f"{self.limit}")
        if not self.sources and not self.generators:
            raise AgscmError("give at least one source (or a generator)")
        specs = self.method_specs()
        if self.generators and GENERATOR_METHOD not in {s.name for s in specs}:
            raise AgscmError(f"generators were given but {GENERATOR_METHOD} is not among the "
                             f"methods ({', '.join(s.label for s in specs)})")

    def method_specs(self) -> list[MethodSpec]:
        if self.methods:
            specs = [parse_method(text) for text in self.methods]
        else:
            names = ([GENERATOR_METHOD] if self.generators else []) + list(BASELINES)
            specs = [MethodSpec(name) for name in names]
        return list(dict.fromkeys(specs))

    def source_labels(self) -> list[str]:
        """The sources in order, then generator labels not among them (e.g. ensembles)."""
        return list(dict.fromkeys([*self.sources, *self.generators]))

    def command(self) -> str:
        """An `agscm evaluate` line that reruns this config."""
        parts = ["agscm", "evaluate", "--data", self.data]
        attached = [f"{label}={path}" for label, paths in self.generators.items() for path in paths]
        for flag, values in (("--source", self.sources), ("--target", self.targets),
                             ("--method", self.methods), ("--generator", attached)):
            for value in values:
                parts += [flag, value]
        for flag, value, default in (
                ("--zoo", self.zoo_dir, None), ("--split", self.split, "test"),
                ("--limit", self.limit, None), ("--eps", self.eps, None),
                ("--batch-size", self.batch_size, 250), ("--seed", self.seed, 0),
                ("--cache", self.cache_dir, str(DEFAULT_CACHE_DIR)),
                ("--device", self.device, "cpu")):
            if value != default:
                parts += [flag, str(value)] if value is not None else ["--no-cache"]
        return " ".join(shlex.quote(part) for part in parts)


@dataclass
class CraftedSet:
    """One (source, method) set: how it was made and how big its perturbations are."""

    source: str
    method: str
    settings: dict[str, Any]
    white_box: list[str]  # the targets this set is white-box for
    images: int
    seconds: float
    images_per_second: float
    mean_linf: float
    max_linf: float
    mean_l2: float
    cached: bool
    cache_file: str | None


@dataclass
class Cell:
    source: str
    method: str
    target: str
    white_box: bool
    accuracy: float
    success_rate: float
    clean_correct: int
    collapse: float  # share of all images sent to the target's most common wrong class


@dataclass
class TransferResult:
    """The whole table: row order (sources, methods), columns (targets) and the numbers."""

    config: EvalConfig
    eps: float
    images: int
    sources: list[str]
    methods: list[str]
    targets: list[str]
    clean_accuracy: dict[str, float]
    sets: list[CraftedSet] = field(default_factory=list)
    cells: list[Cell] = field(default_factory=list)
    scoring_seconds: float = 0.0  # every model's predictions, clean and adversarial, as recorded
    planned_sets: int = 0  # (source, method) sets the table will have when complete

    @property
    def complete(self) -> bool:
        return len(self.sets) >= self.planned_sets

    def cell(self, source: str, method: str, target: str) -> Cell | None:
        return next((c for c in self.cells if (c.source, c.method, c.target)
                     == (source, method, target)), None)

    def rows(self) -> list[tuple[str, str]]:
        """(source, method) pairs that have a crafted set, in table order."""
        return [(s.source, s.method) for s in self.sets]

    def to_json(self) -> dict[str, Any]:
        return {"command": self.config.command(), "config": asdict(self.config), "eps": self.eps,
                "images": self.images, "sources": self.sources, "methods": self.methods,
                "targets": self.targets, "clean_accuracy": self.clean_accuracy,
                "sets": [asdict(s) for s in self.sets], "cells": [asdict(c) for c in self.cells],
                "scoring_seconds": self.scoring_seconds, "planned_sets": self.planned_sets,
                "complete": self.complete}


@dataclass
class _Model:
    name: str
    paths: list[Path]  # the checkpoint, or each member's for an ensemble
    members: list[str]  # [name] for one model
    model: nn.Module
    correct: np.ndarray  # clean-correct mask on the evaluation images


@dataclass
class _Row:
    source: str
    method: Method
    white_box: set[str]


def evaluate(config: EvalConfig, progress: bool = True, console: Console | None = None,
             on_set: Callable[[TransferResult], None] | None = None) -> TransferResult:
    """Craft every (source, method) set (or reuse the cached one) and score it on every target.

    `on_set(result so far)` runs after each set is scored, so a caller can write the table as
    it grows: a CIFAR-10 table takes a CPU several sessions, and its cells should outlive them.
    """
    config.validate()
    console = console or Console(stderr=True, quiet=not progress)
    data = load_split(config.data, config.split).subset(config.limit)
    eps = config.eps if config.eps is not None else default_eps(data.channels)
    zoo = Path(config.zoo_dir) if config.zoo_dir else None
    clean = data.as_float()
    hashed_clean = HashedImages.of(clean)
    models: dict[str, _Model] = {}
    cache = CraftCache(Path(config.cache_dir) if config.cache_dir else None,
                       lambda text: print_warning(console, text))

    def model(name: str) -> _Model:
        if name not in models:
            loaded = []
            for member in ensemble_members(name):
                network, meta = load_classifier(member, zoo, device=config.device)
                check_fits(data, meta)
                loaded.append((network, meta))
            network = loaded[0][0] if len(loaded) == 1 else Ensemble([n for n, _ in loaded])
            label = ENSEMBLE_SEPARATOR.join(meta["name"] for _, meta in loaded)
            paths = [Path(meta["path"]) for _, meta in loaded]
            on_clean = cache.predict(f"clean-on-{label}", network, paths, hashed_clean,
                                     config.batch_size, config.device)
            models[name] = _Model(label, paths, [meta["name"] for _, meta in loaded], network,
                                  on_clean == data.labels)
        return models[name]

    rows = _plan_rows(config, data, eps, zoo, model)
    loaded = [model(name) for name in (config.targets or _zoo_sources(config, zoo))]
    targets = list({t.name: t for t in loaded}.values())  # a name and its path are one target
    if not targets:
        raise AgscmError("give at least one target model")
    result = TransferResult(
        config, eps, len(data), list(dict.fromkeys(r.source for r in rows)),
        list(dict.fromkeys(r.method.label for r in rows)), [t.name for t in targets],
        {m.name: float(m.correct.mean()) for m in models.values()}, planned_sets=len(rows))
    scorers = [Scorer(target.name, target.model, target.paths) for target in targets]
    for row in rows:
        key = set_key(row.method.settings(), row.method.files(), hashed_clean, config.device)
        scored = cache.scored_set(f"{row.source}-{row.method.label}", key, data.labels, clean,
                                  lambda store, row=row: row.method.craft(
                                      data, config.batch_size, progress, store),
                                  scorers, config.batch_size, config.device)
        record = scored.record
        console.print(f"{row.source} / {row.method.label}: " + (
            f"crafted {len(data)} images in {record.seconds:.1f} s" if scored.crafted
            else "from the cache"))
        white = [t.name for t in targets if t.name in row.white_box]
        result.sets.append(CraftedSet(
            row.source, row.method.label, row.method.settings(), white, len(data),
            record.seconds, record.images_per_second, record.size.mean_linf,
            record.size.max_linf, record.size.mean_l2, not scored.crafted,
            str(scored.path) if scored.path else None))
        for target in targets:
            on_target = scored.predictions[target.name]
            cell = score(on_target, data.labels, target.correct)
            result.cells.append(Cell(row.source, row.method.label, target.name,
                                     target.name in row.white_box, cell.accuracy,
                                     cell.success_rate, cell.clean_correct,
                                     collapse(on_target, data.labels, len(data.classes))))
        result.scoring_seconds = cache.prediction_seconds
        if on_set is not None:
            on_set(result)
    return result


def _zoo_sources(config: EvalConfig, zoo: Path | None) -> list[str]:
    return [label for label in config.source_labels()
            if len(ensemble_members(label)) == 1 and _in_zoo(label, zoo)]


def _in_zoo(label: str, zoo: Path | None) -> bool:
    """Whether every member of `label` (one name, or an ensemble `a+b`) is a zoo model."""
    try:
        for member in ensemble_members(label):
            resolve_model_path(member, zoo)
    except AgscmError:
        return False
    return True


def _plan_rows(config: EvalConfig, data: ImageSet, eps: float, zoo: Path | None,
               model: Callable[[str], _Model]) -> list[_Row]:
    """Build every method up front, so a bad option or file fails before any crafting."""
    rows = []
    for label in config.source_labels():
        generator_only = label in config.generators and not _in_zoo(label, zoo)
        source = None if generator_only else model(label)
        name = source.name if source else label
        for spec in config.method_specs():
            if spec.name == GENERATOR_METHOD:
                if label not in config.generators:
                    raise AgscmError(f"{GENERATOR_METHOD} needs a generator for source {label!r}; "
                                     f"give --generator {label}=PATH")
                methods = [_generator(path, config.device, data, eps, source)
                           for path in config.generators[label]]
                labels = [method.label for method in methods]
                if len(set(labels)) < len(labels):
                    raise AgscmError(f"source {label!r} has two generators of one recipe "
                                     f"({', '.join(labels)}); give each recipe once")
                rows += [_Row(name, method, set(method.info.sources)) for method in methods]
            elif source is not None:  # a generator-only source has no model to attack
                method = BaselineMethod(spec, source.model, source.paths, eps, data.channels,
                                        config.seed)
                rows.append(_Row(name, method, set(source.members)))
    return rows


def _generator(path: str, device: str, data: ImageSet, eps: float,
               source: _Model | None) -> GeneratorMethod:
    method = GeneratorMethod(Path(path), device)
    info = method.info
    if info.channels != data.channels:
        raise AgscmError(f"{path}: generator takes {info.channels}-channel images but "
                         f"{data.name} has {data.channels}")
    if info.norm != "linf" or abs(info.eps - eps) > 1e-6:
        raise AgscmError(f"{path}: generator was trained at {info.norm} eps {info.eps:.4g} but "
                         f"the evaluation uses L-inf eps {eps:.4g}; pass --eps {info.eps:.4g} "
                         "or another generator")
    if source is not None and info.sources != source.members:
        raise AgscmError(f"{path}: generator was trained against {', '.join(info.sources)}, "
                         f"not {source.name}; attach it to a label of its own")
    return method


def collapse(predictions: np.ndarray, labels: np.ndarray, classes: int) -> float:
    """The share of all images predicted as the single most common wrong class."""
    wrong = predictions[predictions != labels]
    return float(np.bincount(wrong, minlength=classes).max() / len(labels)) if len(labels) else 0.0
