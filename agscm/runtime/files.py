"""The file-system side of a folder run: walking the input tree, naming outputs, atomic writes.

Atomic writes use a temp name that depends only on the final name (`.NAME.agscm-tmp`, in the
same folder), so a run killed mid-write leaves at most that one hidden file, and the rerun,
which must redo that output, overwrites and renames it: nothing partial survives a resume.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from agscm.errors import AgscmError

TEMP_SUFFIX = ".agscm-tmp"


def temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}{TEMP_SUFFIX}")


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp path to write; on success it replaces `path` in one rename, else it goes."""
    temp = temp_path(path)
    try:
        yield temp
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


@dataclass(frozen=True)
class Entry:
    """One thing found under the input root: a file to try, or a problem to report."""

    relative: Path
    identity: tuple[int, int] | None = None  # (st_dev, st_ino) of a regular file
    problem: str | None = None
    failed: bool = True  # for problems: a failure, or merely ignored (sockets, FIFOs)


def walk(root: Path) -> list[Entry]:
    """Every file under `root`, sorted, following directory links but not loops.

    A link back to a folder on the current path is reported as a symlink loop; broken links,
    unreadable folders and special files (FIFOs, sockets, devices) are reported too.
    """
    root_stat = os.stat(root)
    return list(_walk(root, Path(), [(root_stat.st_dev, root_stat.st_ino)]))


def _walk(root: Path, relative: Path, ancestors: list[tuple[int, int]]) -> Iterator[Entry]:
    try:
        with os.scandir(root / relative) as listing:
            names = sorted(entry.name for entry in listing)
    except OSError as exc:
        yield Entry(relative, problem=f"unreadable folder ({exc.strerror})")
        return
    for name in names:
        child = relative / name
        try:
            info = os.stat(root / child)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                reason = "symlink loop"
            elif os.path.islink(root / child):
                reason = "broken symlink"
            else:
                reason = f"unreadable ({exc.strerror})"
            yield Entry(child, problem=reason)
            continue
        identity = (info.st_dev, info.st_ino)
        if stat.S_ISDIR(info.st_mode):
            if identity in ancestors:
                yield Entry(child, problem="symlink loop (links back to a folder above it)")
            else:
                yield from _walk(root, child, [*ancestors, identity])
        elif stat.S_ISREG(info.st_mode):
            yield Entry(child, identity)
        else:
            yield Entry(child, problem="not a regular file", failed=False)


def output_names(relatives: list[Path], suffix: str) -> dict[Path, Path]:
    """Output path (relative) for each input: same folder and stem, the format's suffix.

    Two inputs that would meet (`a.jpg` and `a.png` -> `a.png`) are kept apart: the one that
    already has the suffix keeps the plain name, the other becomes `a.jpg.png` (and so on).
    """
    taken = {rel.as_posix().lower() for rel in relatives if rel.suffix.lower() == suffix}
    names: dict[Path, Path] = {}
    for rel in relatives:
        if rel.suffix.lower() == suffix:
            names[rel] = rel
            continue
        candidate, name = rel.with_suffix(suffix), rel.name
        while candidate.as_posix().lower() in taken:
            name += suffix
            candidate = rel.with_name(name)
        taken.add(candidate.as_posix().lower())
        names[rel] = candidate
    return names


def parse_shard(text: str) -> tuple[int, int]:
    """`i/n` (0-based i) -> (i, n)."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise AgscmError(f"--shard {text!r}: expected i/n, e.g. 0/4") from None
    if count < 1 or not 0 <= index < count:
        raise AgscmError(f"--shard {text!r}: need n >= 1 and 0 <= i < n")
    return index, count


def check_destination(source: Path, destination: Path, allow_inside: bool = False) -> None:
    """Refuse a missing input folder, and an output folder equal to or inside the input tree."""
    if not source.is_dir():
        raise AgscmError(f"{source}: input folder not found")
    if destination.exists() and not destination.is_dir():
        raise AgscmError(f"{destination}: exists and is not a folder")
    src, dst = source.resolve(), destination.resolve()
    if not allow_inside and (dst == src or dst.is_relative_to(src)):
        raise AgscmError(f"{destination}: output folder is inside the input folder {source}; "
                         "choose another (or pass --allow-inside-input)")
