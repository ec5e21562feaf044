"""The manifest of a folder run: one JSON line per file, the record resume trusts.

The manifest is the truth about OUT: a line is appended (one `write`, no user-space buffer)
only after its output has been renamed into place, so a killed run never claims an output
it did not finish, and an output without its `ok` line is redone. On start a torn last line
(a run killed, or a disk filled, mid-write) is cut off and reported; a broken line elsewhere
is an error, never skipped in silence. At the end of a run the file is rewritten (atomically)
to one line per input, the latest, unless it already is (a first run writes each input
once). An exclusive lock keeps two runs off one manifest.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass, fields
from pathlib import Path

from agscm.atomic import atomic_path
from agscm.errors import AgscmError
from agscm.runtime.files import Identity, identity, is_within

Fingerprint = list[int]  # [size in bytes, mtime in ns]


def fingerprint(info: os.stat_result) -> Fingerprint:
    return [info.st_size, info.st_mtime_ns]


@dataclass
class FileRecord:
    """One manifest line. size is [width, height]; L-inf and L2 on the [0,1] scale, measured
    between the 8-bit input (in the model's mode) and the 8-bit output as saved; `converted`
    names what the input lost on the way (colour to grey, ...); `within_eps` says whether the
    saved file keeps an L-inf model's bound (lossy formats may not)."""

    input: str
    output: str | None
    status: str
    size: list[int] | None = None
    linf: float | None = None
    l2: float | None = None
    psnr: float | None = None
    within_eps: bool | None = None
    converted: list[str] | None = None
    error: str | None = None
    input_fingerprint: Fingerprint | None = None
    output_fingerprint: Fingerprint | None = None
    settings: str | None = None  # model and output options that made the file

    def to_json(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_json(cls, row: dict) -> FileRecord:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in row.items() if key in known})


class Manifest:
    """An open, locked manifest: the latest record per input, and appends."""

    def __init__(self, path: Path, descriptor: int, latest: dict[str, FileRecord],
                 repaired: str | None, lines: int) -> None:
        self.path = path
        self.descriptor = descriptor
        self.latest = latest
        self.repaired = repaired  # what was cut off on start, to tell the user
        self.lines = lines  # records in the file, read on start or appended since

    @classmethod
    def open(cls, path: Path, input_real: str, input_files: set[Identity],
             allow_inside_input: bool = False) -> Manifest:
        """Check, lock, read and repair the manifest at `path` (created if missing)."""
        real = os.path.realpath(path)
        if not allow_inside_input and is_within(real, input_real):
            raise AgscmError(f"{path}: the manifest would be inside the input folder "
                             f"({real}); choose a path outside it")
        try:
            info = os.stat(real)
        except FileNotFoundError:
            info = None
        except OSError as exc:
            raise AgscmError(f"{path}: cannot use as the manifest ({exc.strerror})") from None
        if info is not None and identity(info) in input_files:
            raise AgscmError(f"{path}: the manifest would be an input file; choose another path")
        if info is not None and not os.path.isfile(real):
            raise AgscmError(f"{path}: exists and is not a regular file")
        try:
            Path(real).parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(real, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
        except OSError as exc:
            raise AgscmError(f"{path}: cannot open the manifest ({exc.strerror})") from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(descriptor)
            raise AgscmError(f"{path}: another agscm perturb is writing this manifest") from None
        try:
            latest, repaired, lines = _read(Path(real), descriptor)
        except BaseException:
            os.close(descriptor)
            raise
        return cls(Path(real), descriptor, latest, repaired, lines)

    def append(self, records: list[FileRecord]) -> None:
        """Write their lines now; see `append_lines`."""
        append_lines(self.descriptor, self.path, records)
        self.update(records)

    def update(self, records: list[FileRecord]) -> None:
        """Take records another process has written (for the rewrite at the end)."""
        for record in records:
            if record.status != "skipped":
                self.latest[record.input] = record
                self.lines += 1

    def compact(self) -> None:
        """Rewrite the file as one line per input (the latest), atomically; a file that
        holds as many lines as inputs already is that."""
        if self.lines == len(self.latest):
            return
        text = "".join(record.to_json() + "\n" for record in self.latest.values())
        try:
            with atomic_path(self.path) as temp:
                temp.write_text(text)
        except OSError as exc:
            raise AgscmError(f"{self.path}: cannot rewrite the manifest ({exc.strerror}); "
                             "it is intact, with earlier lines kept") from None

    def close(self) -> None:
        os.close(self.descriptor)


def append_lines(descriptor: int, path: Path, records: list[FileRecord]) -> None:
    """Append records to an O_APPEND descriptor in one `write` (lines from several processes
    never interleave on a local file system); a failure (a full disk) stops the run with one
    line, and a torn line it leaves is cut off on the next start."""
    data = "".join(record.to_json() + "\n" for record in records).encode()
    try:
        while data:
            data = data[os.write(descriptor, data):]
    except OSError as exc:
        raise AgscmError(f"{path}: cannot append to the manifest ({exc.strerror}); the files "
                         "recorded so far are safe, rerun to resume") from None


def _read(path: Path, descriptor: int) -> tuple[dict[str, FileRecord], str | None, int]:
    """The latest record per input, what was repaired, and the number of records; a torn
    last line is truncated away and described."""
    data = path.read_bytes()
    latest: dict[str, FileRecord] = {}
    count = 0
    lines = data.split(b"\n")
    complete, tail = lines[:-1], lines[-1]  # tail: bytes after the last newline
    good_bytes = len(data) - len(tail)
    repaired = None
    for number, line in enumerate(complete, 1):
        try:
            record = FileRecord.from_json(json.loads(line))
        except (ValueError, TypeError, AttributeError):
            if number == len(complete) and not tail:
                good_bytes -= len(line) + 1
                repaired = f"line {number} was torn ({len(line)} bytes)"
                break
            raise AgscmError(f"{path}: line {number} is not a manifest record; fix or move the "
                             "manifest (resume trusts it)") from None
        latest[record.input] = record
        count += 1
    if tail:
        repaired = f"its last line was torn ({len(tail)} bytes without a newline)"
    if repaired is not None:
        os.ftruncate(descriptor, good_bytes)
    return latest, repaired, count
