"""One writer per output: an advisory lock beside a file that a long run rewrites.

Two runs training into one checkpoint would each overwrite the other's epochs; the second one
is refused at once instead. The lock is the kernel's (flock), so a killed run leaves no stale
lock behind: only its empty `.NAME.lock` file, which the next run reuses.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from agscm.errors import AgscmError


@contextmanager
def exclusive(path: Path, doing: str) -> Iterator[None]:
    """Hold the lock of `path` for the block; if another process holds it, one line saying
    what it is `doing` (e.g. "training")."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(f".{path.name}.lock")
    descriptor = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise AgscmError(f"{path}: another agscm process is {doing} it (lock {lock}); wait "
                             "for it to finish or choose another output") from None
        yield
    finally:
        os.close(descriptor)
