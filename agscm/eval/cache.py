"""Crafted sets and their predictions on disk, so adding a target (or rerunning a killed
evaluation) crafts and scores nothing twice.

A set is keyed by the method and its settings, the content hash of every checkpoint it
depends on, the content hash of the clean images it perturbs, and the kind of device that
crafts it: change any of them and the key changes. No key holds a path, so a cache folder
copied to another checkout (or machine of the same kind) is found there.
A model's predictions on a set (or on the clean images) are keyed by the images' own hash,
the content hash of the model's checkpoints and the device. Beside each set a small record
keeps the adversarial images' hash, the crafting time and the perturbations' size: with it and
the predictions a table is scored again without the set's images, so keeping `records/` and
`predictions/` (kilobytes a set, where the set is megabytes) is enough to carry a long table
over to another session. Files are `.npz` (no pickles), written atomically, named
`<source>-<method>-<hash>.npz`, `records/<source>-<method>-<hash>.npz` and
`predictions/<set>-on-<model>-<hash>.npz`.
A set being crafted keeps its progress in `<source>-<method>-<hash>.partial.npz` under the same
key, so a killed table goes on mid-set (a damaged one is named in a warning and the set
crafted from the start); the file goes once the set is stored.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from torch import nn

from agscm import __version__
from agscm.atomic import atomic_path
from agscm.attacks.craft import CraftResult, CraftState, CraftStore
from agscm.digest import file_digest
from agscm.errors import AgscmError
from agscm.eval.scoring import DeltaSize, delta_size, predict

DEFAULT_CACHE_DIR = Path("runs") / "cache"
T = TypeVar("T")


def set_key(settings: dict[str, Any], files: list[Path], clean: HashedImages,
            device: str) -> dict[str, Any]:
    """Everything a crafted set depends on, as a JSON-able dict: the method, its checkpoints'
    contents (not where they lie) and the clean images'. The device kind counts: a GPU crafts
    other last bits (and at another speed, which the table reports) than a CPU."""
    return {"agscm": __version__, "settings": settings,
            "files": [file_digest(Path(f)) for f in files], "images": clean.identity,
            "device": device_kind(device)}


def device_kind(device: str) -> str:
    """`cuda:1` -> `cuda`: devices of one kind give the same bits."""
    return str(device).partition(":")[0]


@dataclass(frozen=True)
class HashedImages:
    """Images with their content hash, taken once: a CIFAR-10 test set is 123 MB and its
    predictions are looked up on every target."""
    array: np.ndarray
    identity: dict[str, Any]

    @classmethod
    def of(cls, images: np.ndarray) -> HashedImages:
        contiguous = np.ascontiguousarray(images)
        return cls(images, {"sha256": hashlib.sha256(contiguous.data).hexdigest(),
                            "shape": list(contiguous.shape), "dtype": str(contiguous.dtype)})


def prediction_key(images: dict[str, Any], model_files: list[Path],
                   device: str) -> dict[str, Any]:
    """A model's predictions depend on the exact images (their identity: a recrafted set is
    scored again), its weights and, in the last bits of its logits, the device that ran it."""
    return {"agscm": __version__, "images": images,
            "model": [file_digest(Path(f)) for f in model_files], "device": device_kind(device)}


@dataclass
class Fetched:
    result: CraftResult
    cached: bool
    path: Path | None


@dataclass(frozen=True)
class SetRecord:
    """What a table needs of a crafted set besides its predictions: the adversarial images'
    identity (the predictions' key), the crafting time and the perturbations' size."""

    images: dict[str, Any]
    seconds: float
    images_per_second: float
    size: DeltaSize


@dataclass(frozen=True)
class Scorer:
    """A model a set is scored on: its name in file names, the network and its checkpoints."""

    name: str
    model: nn.Module
    files: list[Path]


@dataclass
class ScoredSet:
    """A set's record and its predictions on each scorer (by name). `crafted`: the images
    were made now (not read from the cache, nor left out because every prediction was kept)."""

    record: SetRecord
    predictions: dict[str, np.ndarray]
    crafted: bool
    path: Path | None


class CraftCache:
    """Get a crafted set from `folder`, or craft and store it. `folder=None` disables caching.

    `crafted` and `reused` count what happened, for reports and tests.
    """

    def __init__(self, folder: Path | None = DEFAULT_CACHE_DIR,
                 warn: Callable[[str], None] = lambda text: None) -> None:
        self.folder = Path(folder) if folder is not None else None
        self.warn = warn  # told of a stored file that cannot be used (it is made again)
        self.crafted = 0
        self.reused = 0
        self.predicted = 0
        self.predictions_reused = 0
        self.prediction_seconds = 0.0  # measured when scored, read back when reused

    def path_for(self, name: str, key: dict[str, Any], subfolder: str = "") -> Path | None:
        if self.folder is None:
            return None
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        slug = re.sub(r"[^A-Za-z0-9._+-]+", "_", name).strip("._") or "set"
        return self.folder / subfolder / f"{slug}-{digest}.npz"

    def predict(self, name: str, model: nn.Module, model_files: list[Path],
                images: HashedImages, batch_size: int, device: str) -> np.ndarray:
        """`predict` through the cache: scoring a full test set on every target takes a CPU
        longer than crafting most sets, and a resumed table should not pay for it twice."""
        key = prediction_key(images.identity, model_files, device)
        (predictions, seconds), cached = _stored_or_made(
            self.path_for(name, key, "predictions"), lambda path: _read_predictions(path, key),
            lambda: _timed_predict(model, images.array, batch_size),
            lambda path, made: _write_arrays(path, key, predictions=made[0],
                                             seconds=np.float64(made[1])), self.warn)
        self.predictions_reused += cached
        self.predicted += not cached
        self.prediction_seconds += seconds
        return predictions

    def scored_set(self, name: str, key: dict[str, Any], labels: np.ndarray, clean: np.ndarray,
                   make: Callable[[CraftStore | None], CraftResult], scorers: list[Scorer],
                   batch_size: int, device: str) -> ScoredSet:
        """The set for `key` scored on every scorer: from its record and kept predictions when
        all are there (its images are not even read), else fetched or crafted and scored."""
        record_path = self.path_for(name, key, "records")
        record = _read_record(record_path, key) if record_path and record_path.is_file() else None
        if record is None and record_path is not None and record_path.is_file():
            self.warn(f"{record_path}: a set's record, damaged or of another set or version; "
                      "the set is read or crafted again and the record rewritten")
        if record is not None:
            kept = [self._kept_predictions(f"{name}-on-{scorer.name}", scorer.files,
                                           record.images, device) for scorer in scorers]
            if all(value is not None for value in kept):
                stored = [value for value in kept if value is not None]
                self.reused += 1
                self.predictions_reused += len(stored)
                self.prediction_seconds += sum(seconds for _, seconds in stored)
                return ScoredSet(record, {scorer.name: predictions for scorer, (predictions, _)
                                          in zip(scorers, stored, strict=True)},
                                 False, record_path)
        fetched = self.fetch(name, key, labels, make)
        adversarial = HashedImages.of(fetched.result.adversarial)
        record = SetRecord(adversarial.identity, fetched.result.seconds,
                           fetched.result.images_per_second,
                           delta_size(fetched.result.adversarial, clean))
        if record_path is not None:
            _write_arrays(record_path, key, images=np.array(json.dumps(record.images)),
                          seconds=np.float64(record.seconds),
                          images_per_second=np.float64(record.images_per_second),
                          size=np.array([record.size.mean_linf, record.size.max_linf,
                                         record.size.mean_l2]))
        predictions = {scorer.name: self.predict(f"{name}-on-{scorer.name}", scorer.model,
                                                 scorer.files, adversarial, batch_size, device)
                       for scorer in scorers}
        return ScoredSet(record, predictions, not fetched.cached, fetched.path)

    def _kept_predictions(self, name: str, model_files: list[Path], images: dict[str, Any],
                          device: str) -> tuple[np.ndarray, float] | None:
        key = prediction_key(images, model_files, device)
        path = self.path_for(name, key, "predictions")
        return _read_predictions(path, key) if path is not None and path.is_file() else None

    def fetch(self, name: str, key: dict[str, Any], labels: np.ndarray,
              make: Callable[[CraftStore | None], CraftResult]) -> Fetched:
        """The stored set for `key` if there is a sound one, else `make(store)` and store it;
        `store` keeps the craft's progress meanwhile (None without a cache folder)."""
        path = self.path_for(name, key)
        partial = PartialSet(path.with_suffix(".partial.npz"), key, self.warn) if path else None
        result, cached = _stored_or_made(path, lambda p: _read(p, key, labels),
                                         lambda: make(partial),
                                         lambda p, made: _write(p, key, labels, made), self.warn)
        if partial is not None:
            partial.path.unlink(missing_ok=True)
        self.reused += cached
        self.crafted += not cached
        return Fetched(result, cached, path)


@dataclass
class PartialSet:
    """A CraftStore in one file beside the finished set's, under the set's key (uncompressed:
    it is rewritten every minute or so)."""

    path: Path
    key: dict[str, Any]
    warn: Callable[[str], None] = lambda text: None

    def load(self) -> CraftState | None:
        stored = _load_matching(self.path, self.key, ("adversarial", "seconds", "batch_size",
                                                      "cpu_rng", "cuda_rng"))
        if stored is None:
            if self.path.exists():  # said, so that a long craft starting over is no surprise
                self.warn(f"{self.path}: a killed craft's progress, damaged (or another "
                          "set's); crafting the set from the start")
            return None
        cuda_rng = stored["cuda_rng"]
        return CraftState(len(stored["adversarial"]), stored["adversarial"],
                          float(stored["seconds"]), int(stored["batch_size"]), stored["cpu_rng"],
                          cuda_rng if cuda_rng.size else None)

    def save(self, state: CraftState) -> None:
        empty = np.zeros(0, dtype=np.uint8)
        _write_arrays(self.path, self.key, compress=False, adversarial=state.adversarial,
                      seconds=np.float64(state.seconds), batch_size=np.int64(state.batch_size),
                      cpu_rng=state.cpu_rng,
                      cuda_rng=empty if state.cuda_rng is None else state.cuda_rng)


def _stored_or_made(path: Path | None, read: Callable[[Path], T | None], make: Callable[[], T],
                    write: Callable[[Path, T], None],
                    warn: Callable[[str], None]) -> tuple[T, bool]:
    """(value, whether it came from `path`): read it when sound, else make and write it. A file
    that is there but unusable is said (`warn`), so that work done again is no surprise."""
    if path is not None and path.is_file():
        stored = read(path)
        if stored is not None:
            return stored, True
        warn(f"{path}: stored, but damaged or of another set or version; made again and "
             "overwritten")
    made = make()
    if path is not None:
        write(path, made)
    return made, False


def _read(path: Path, key: dict[str, Any], labels: np.ndarray) -> CraftResult | None:
    """The stored result, or None when the file is unreadable or belongs to another key."""
    stored = _load_matching(path, key, ("adversarial", "labels", "seconds", "images_per_second"))
    if stored is None or not np.array_equal(stored["labels"], labels):
        return None
    return CraftResult(stored["adversarial"].astype(np.float32, copy=False),
                       float(stored["seconds"]), float(stored["images_per_second"]))


def _timed_predict(model: nn.Module, images: np.ndarray,
                   batch_size: int) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    predictions = predict(model, images, batch_size)
    return predictions, time.perf_counter() - start


def _read_predictions(path: Path, key: dict[str, Any]) -> tuple[np.ndarray, float] | None:
    """Predictions and the seconds they took; files without seconds are scored again."""
    stored = _load_matching(path, key, ("predictions", "seconds"))
    return None if stored is None else (stored["predictions"], float(stored["seconds"]))


def _read_record(path: Path, key: dict[str, Any]) -> SetRecord | None:
    stored = _load_matching(path, key, ("images", "seconds", "images_per_second", "size"))
    if stored is None:
        return None
    return SetRecord(json.loads(str(stored["images"])), float(stored["seconds"]),
                     float(stored["images_per_second"]), DeltaSize(*map(float, stored["size"])))


def _load_matching(path: Path, key: dict[str, Any],
                   names: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """The arrays `names` of a file stored under `key`; None when it is damaged (it is made
    again and overwritten) or belongs to another key."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            if json.loads(str(stored["key"])) != json.loads(json.dumps(key)):
                return None
            return {name: stored[name] for name in names}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None


def _write(path: Path, key: dict[str, Any], labels: np.ndarray, result: CraftResult) -> None:
    _write_arrays(path, key, adversarial=result.adversarial, labels=labels,
                  seconds=np.float64(result.seconds),
                  images_per_second=np.float64(result.images_per_second))


def _write_arrays(path: Path, key: dict[str, Any], compress: bool = True,
                  **arrays: np.ndarray) -> None:
    save = np.savez_compressed if compress else np.savez
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as temp, open(temp, "wb") as stream:
            save(stream, **arrays, key=np.array(json.dumps(key, sort_keys=True)))
    except OSError as exc:
        raise AgscmError(f"{path}: cannot write to the cache ({exc.strerror or exc}); what it "
                         "held before is unchanged") from None
