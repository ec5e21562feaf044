"""Decoded splits saved as `.npz` outside the repository, so archives are decoded only once.

A cache file is keyed by the source's absolute path, size and modification time (and the split),
so replacing the archive invalidates it. Files are written atomically (temp file, then
`os.replace`), so concurrent runs never read half a file. Set `$AGSCM_CACHE` to move the cache
(default `~/.cache/agscm/data`); delete the folder to clear it.
"""

from __future__ import annotations

import hashlib
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np

from agscm.atomic import write_with
from agscm.data.imageset import ImageSet

FORMAT = 2  # bump when decoding changes, so old cache files are no longer used


def cache_dir() -> Path:
    return Path(os.environ.get("AGSCM_CACHE") or Path.home() / ".cache" / "agscm" / "data")


def cache_path(source: Path, split: str) -> Path:
    """The cache file for `split` of `source` as it is now on disk."""
    stat = source.stat()
    key = f"{FORMAT}\0{source.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\0{split}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir() / f"{source.name}.{split}.{digest}.npz"


def load_cached(source: Path, split: str) -> ImageSet | None:
    """The cached split, or None when absent or unreadable (a bad cache file is just rebuilt)."""
    path = cache_path(source, split)
    try:
        with np.load(path, allow_pickle=False) as saved:
            return ImageSet(saved["images"], saved["labels"], saved["classes"].tolist(),
                            str(saved["name"]))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None


def save_cached(source: Path, split: str, data: ImageSet) -> None:
    """Write the split atomically; a cache that cannot be written only costs speed, so warn."""
    path = cache_path(source, split)
    try:
        write_with(path, lambda handle: np.savez(
            handle, images=data.images, labels=data.labels,
            classes=np.asarray(data.classes, dtype=str), name=np.asarray(data.name)))
    except OSError as exc:
        warnings.warn(f"{path}: cannot write the data cache ({exc})", stacklevel=2)
