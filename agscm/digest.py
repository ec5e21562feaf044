"""File digests, torch-free: checkpoints (resume guards, cache keys), the runtime's run
settings and the browser site's pinned onnxruntime-web files all compare files by sha256."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks: a copied file matches, a changed one not."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
