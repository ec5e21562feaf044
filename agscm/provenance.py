"""Which code made a result: the commit of this checkout, recorded beside what it trained."""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@cache
def source_commit() -> str | None:
    """HEAD of the checkout agscm runs from (`+dirty` when agscm/ has uncommitted changes), or
    None for an installed copy outside git. Ask at the start of a run: HEAD may move while a
    long run goes on, and the code it runs is the one it loaded."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "agscm"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")
