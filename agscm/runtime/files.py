"""The file-system side of a folder run: walking the input tree, naming outputs, safe writes.

Three rules keep a run from touching what it must not (docs/USAGE.md, "Guarantees"):
- Every walk and every write goes by real paths: the walk skips whatever resolves into the
  output folder, and a write whose folder resolves into the input tree (or is any folder the
  walk read) is refused.
- Temporary files are created exclusively (`O_CREAT | O_EXCL | O_NOFOLLOW`) inside the
  already-checked output folder, under a short name that fits whenever the output name does,
  and renamed over the output in one step: a planted file or symlink is never written through.
- Output names are a fixed, injective function of the input path (`a.jpg` -> `a.jpg.png`), so
  what one input gets never depends on which other files exist.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from agscm.atomic import TEMP_SUFFIX, write_in_folder
from agscm.errors import AgscmError

NAME_MAX = 255  # bytes in one file name on every common file system
Identity = tuple[int, int]  # (st_dev, st_ino)


def identity(info: os.stat_result) -> Identity:
    return info.st_dev, info.st_ino


def temp_name(name: str) -> str:
    """The temp name for output `name`: short (fits whenever `name` does) and fixed per name,
    so a rerun that redoes an output finds and removes the temp its killed run left."""
    return f".{hashlib.sha1(name.encode(errors='surrogateescape')).hexdigest()[:16]}{TEMP_SUFFIX}"


def write_atomic(folder_fd: int, name: str, data: bytes) -> os.stat_result:
    """Write `data` as `name` in the folder open at `folder_fd` (agscm.atomic), through this
    name's fixed temp, so a rerun removes what a killed run left. Returns the output's stat
    (the manifest's fingerprint of it)."""
    return write_in_folder(folder_fd, name, data, temp_name(name))


def output_name(relative: Path, suffix: str) -> Path:
    """The output path (relative) for an input: its own name plus the format's suffix.

    Injective by construction (`a.jpg` -> `a.jpg.png`, `a.png` -> `a.png.png`). A name that
    would pass NAME_MAX keeps its start and ends in a hash of the whole name instead.
    """
    name = relative.name + suffix
    encoded = name.encode(errors="surrogateescape")
    if len(encoded) > NAME_MAX:
        digest = hashlib.sha1(encoded).hexdigest()[:16]
        keep = relative.name.encode(errors="surrogateescape")[:NAME_MAX - len(suffix) - 17]
        name = keep.decode(errors="ignore") + "~" + digest + suffix
    return relative.with_name(name)


def is_within(path: str, root: str) -> bool:
    """Whether real path `path` is `root` or lies under it."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


@dataclass(frozen=True)
class Entry:
    """One thing found under the input root: a file to try, or a problem to report."""

    relative: Path
    identity: Identity | None = None  # of a regular file
    problem: str | None = None
    failed: bool = True  # for problems: a failure, or merely ignored (sockets, FIFOs)


@dataclass
class InputTree:
    """What a walk found: the entries, and the identity of every folder it read."""

    entries: list[Entry]
    folders: set[Identity]
    files: set[Identity]


def walk(root: Path, output_real: str | None = None) -> InputTree:
    """Every file under `root`, sorted, following folder links but not loops; iterative, so
    depth is bounded by the file system, not by Python's stack.

    Anything whose real path lies in the output folder `output_real` (and not in the input
    folder it may contain) is reported as ignored and not entered, so outputs are never read
    back as inputs. Links back to a folder on the current path, broken links, unreadable
    folders and special files are reported.
    """
    root_stat = os.stat(root)
    root_real = os.path.realpath(root)
    output_holds_input = output_real is not None and is_within(root_real, output_real)

    def is_output(real: str) -> bool:
        return (output_real is not None and is_within(real, output_real)
                and not (output_holds_input and is_within(real, root_real)))

    entries: list[Entry] = []
    folders = {identity(root_stat)}
    # Each frame: (relative folder, its real path, identities of it and its ancestors).
    stack = [(Path(), root_real, frozenset({identity(root_stat)}))]
    while stack:
        relative, real, ancestors = stack.pop()
        try:
            with os.scandir(root / relative) as listing:
                names = sorted((entry.name, entry.is_symlink()) for entry in listing)
        except OSError as exc:
            entries.append(Entry(relative, problem=f"unreadable folder ({exc.strerror})"))
            continue
        subfolders = []
        for name, is_link in names:
            child = relative / name
            child_real = os.path.realpath(root / child) if is_link else os.path.join(real, name)
            if is_output(child_real):
                entries.append(Entry(child, problem="inside the output folder; not read",
                                     failed=False))
                continue
            try:
                info = os.stat(root / child)
            except OSError as exc:
                entries.append(Entry(child, problem=_stat_problem(root / child, exc)))
                continue
            if stat.S_ISDIR(info.st_mode):
                if identity(info) in ancestors:
                    entries.append(Entry(child, problem="symlink loop (links back to a folder "
                                                        "above it)"))
                else:
                    folders.add(identity(info))
                    subfolders.append((child, child_real, ancestors | {identity(info)}))
            elif stat.S_ISREG(info.st_mode):
                entries.append(Entry(child, identity(info)))
            else:
                entries.append(Entry(child, problem="not a regular file", failed=False))
        stack.extend(reversed(subfolders))
    entries.sort(key=lambda entry: entry.relative.parts)
    return InputTree(entries, folders, {e.identity for e in entries if e.identity is not None})


def _stat_problem(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    if os.path.islink(path):
        return "broken symlink"
    return f"unreadable ({exc.strerror})"


class OutputFolders:
    """Output folders, created and checked on first use, held open by descriptor.

    A folder is refused when its real path lies inside the real input tree (unless the run
    allows that) or when it is any folder the walk read: a symlink in OUT pointing into IN,
    or anywhere IN's links lead, never receives a file.
    """

    KEEP_OPEN = 256  # descriptors held at most; a tree with more folders reopens them

    def __init__(self, root: Path, input_real: str, input_folders: set[Identity],
                 allow_inside_input: bool = False) -> None:
        self.root = root
        self.input_real = input_real
        self.input_folders = input_folders
        self.allow_inside_input = allow_inside_input
        self.open: dict[Path, int] = {}

    def descriptor(self, relative: Path) -> int:
        """An open descriptor of OUT/relative, made if missing; OSError or UnsafeOutput.

        The path is built one folder at a time from OUT's real path, and every existing link
        on the way is resolved and checked before anything is made below it.
        """
        if relative in self.open:
            return self.open[relative]
        if len(self.open) >= self.KEEP_OPEN:
            self.close()
        real = os.path.realpath(self.root)
        self._check(real, self.root)
        for part in relative.parts:
            candidate = os.path.join(real, part)
            try:
                os.mkdir(candidate)
                real = candidate  # made here: a plain folder
            except FileExistsError:
                if os.path.islink(candidate):
                    real = os.path.realpath(candidate)
                    self._check(real, self.root / relative)
                else:
                    real = candidate
        descriptor = os.open(real, os.O_RDONLY | os.O_DIRECTORY)
        if identity(os.fstat(descriptor)) in self.input_folders:
            os.close(descriptor)
            raise UnsafeOutput(f"the output folder {self.root / relative} is an input folder; "
                               "not writing there")
        self.open[relative] = descriptor
        return descriptor

    def _check(self, real: str, shown: Path) -> None:
        inside = not self.allow_inside_input and is_within(real, self.input_real)
        if inside or (os.path.isdir(real) and identity(os.stat(real)) in self.input_folders):
            raise UnsafeOutput(f"the output folder {shown} resolves to {real}, inside the input "
                               "tree; not writing there")

    def close(self) -> None:
        for descriptor in self.open.values():
            os.close(descriptor)
        self.open.clear()


class UnsafeOutput(Exception):
    """A write that would land inside the input tree; the file fails, the run goes on."""


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
    """Refuse a missing input folder, an output folder that is the input folder, and (unless
    allowed) one inside the input tree; real paths, so links cannot hide either."""
    if not source.is_dir():
        raise AgscmError(f"{source}: input folder not found")
    if destination.exists() and not destination.is_dir():
        raise AgscmError(f"{destination}: exists and is not a folder")
    src, dst = os.path.realpath(source), os.path.realpath(destination)
    if dst == src:
        raise AgscmError(f"{destination}: the output folder is the input folder; outputs would "
                         "be read back as inputs. Choose another folder")
    if not allow_inside and is_within(dst, src):
        raise AgscmError(f"{destination}: output folder is inside the input folder {source}; "
                         "choose another (or pass --allow-inside-input)")
