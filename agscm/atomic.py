"""Atomic file writes, for every layer: a reader never sees a half-written file.

The new content goes to an exclusively created temp file beside the target (never through a
planted file or symlink), which then replaces the target in one rename; on any error the temp
file is removed and the target is left as it was. Two entries: by path (`atomic_path` and
the writers on it) and inside a folder held open by descriptor (`write_in_folder`, the
folder runner's, which checked that folder once and must not be raced by a swapped path).
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
EXCLUSIVE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a new, exclusively created temp file beside `path`; on success it replaces
    `path` in one rename, else it is removed. For callers that write by path (onnx, numpy)."""
    while True:
        temp = path.with_name(f".{secrets.token_hex(8)}{TEMP_SUFFIX}")
        try:  # mode 0o666 less the umask, as a plain open() would give (mkstemp gives 0o600)
            os.close(os.open(temp, EXCLUSIVE, 0o666))
            break
        except FileExistsError:
            continue
    try:
        yield temp
        os.replace(temp, path)
    except OSError as exc:
        if exc.filename not in (None, temp, str(temp)):
            raise
        # a failed write (a full disk) names no file, or only the temp one: name the target,
        # so the one-line error says which file was not written
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    finally:
        temp.unlink(missing_ok=True)


def write_in_folder(folder_fd: int, name: str, data: bytes, temp: str) -> os.stat_result:
    """Write `data` as `name` in the folder open at `folder_fd`, through the temp file `temp`.

    A leftover at `temp` (a killed run's, or anything planted there) is unlinked, which
    removes the link itself and never touches what a symlink points to. Returns the stat of
    the file now in place (a rename keeps its size and mtime).
    """
    try:
        descriptor = os.open(temp, EXCLUSIVE, 0o666, dir_fd=folder_fd)
    except FileExistsError:
        os.unlink(temp, dir_fd=folder_fd)
        descriptor = os.open(temp, EXCLUSIVE, 0o666, dir_fd=folder_fd)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            info = os.fstat(descriptor)
        os.replace(temp, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
    except BaseException:
        try:
            os.unlink(temp, dir_fd=folder_fd)
        except OSError:
            pass
        raise
    return info


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
