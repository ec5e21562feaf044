"""Atomic file writes, for every layer: a reader never sees a half-written file.

The new content goes to an exclusively created temp file beside the target (never through a
planted file or symlink), which then replaces the target in one rename; on any error the temp
file is removed and the target is left as it was.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

TEMP_SUFFIX = ".agscm-tmp"


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a new, exclusively created temp file beside `path`; on success it replaces
    `path` in one rename, else it is removed. For callers that write by path (onnx, numpy)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    while True:
        temp = path.with_name(f".{secrets.token_hex(8)}{TEMP_SUFFIX}")
        try:  # mode 0o666 less the umask, as a plain open() would give (mkstemp gives 0o600)
            os.close(os.open(temp, flags, 0o666))
            break
        except FileExistsError:
            continue
    try:
        yield temp
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def write_with(path: Path, fill: Callable[[IO[bytes]], object], mode: int | None = None) -> Path:
    """Write `path` atomically through `fill(stream)` (a binary stream), creating its folder;
    `mode` sets its permissions whatever the umask (e.g. 0o644 for a static web server)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temp:
        with open(temp, "wb") as stream:
            fill(stream)
        if mode is not None:
            os.chmod(temp, mode)
    return path


def write_text(path: Path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temp:
        temp.write_text(text, encoding="utf-8")
    return path


def write_json(path: Path, payload: Any) -> Path:
    """`payload` as indented JSON with a final newline, written atomically."""
    return write_text(path, json.dumps(payload, indent=2) + "\n")
