"""The one domain exception, and the CLI wrapper that turns it into a one-line error."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


class AgscmError(Exception):
    """A problem the user can fix (bad path, bad config, corrupt file); shown as one line."""


def one_line_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Wrap a CLI command so an AgscmError prints `error: ...` and exits 1, never a traceback;
    so does an error of the operating system (a full disk, a folder without permission), which
    no command can do anything about but say where it happened."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except AgscmError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(1) from None
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
            raise SystemExit(1) from None

    return wrapper
