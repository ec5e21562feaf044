"""Fault cases against two versions side by side (benchmarks/hostile_table.py,
benchmarks/fault_table.py): one row a case, printed as the Markdown table of docs/RESULTS.md and
written as JSON. Both scripts put tests/ on sys.path before importing this."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from hostile_cases import Outcome, Unavailable

Env = TypeVar("Env")


def case_row(case: Callable[[Env], Outcome], versions: Iterable[str], work: Path,
             make_env: Callable[[str, Path], Env]) -> dict[str, Any]:
    """`case` against each version (before, after), each in a fresh folder under `work` given
    to `make_env(version, folder)`, with those folders cut out of the detail; "not run" where
    this machine cannot build the case's layout. Prints one progress line."""
    name = case.__name__
    row: dict[str, Any] = {"case": name}
    for version in versions:
        folder = Path(tempfile.mkdtemp(prefix=f"{name}-{version}-", dir=work))
        try:
            outcome = case(make_env(version, folder))
            detail = outcome.detail.replace(f"{folder}/", "").replace(f"{work}/", "")
            row[version] = {"held": outcome.held, "detail": detail}
        except Unavailable as exc:
            row[version] = {"held": None, "detail": f"not run: {exc}"}
    print(f"{name}: before {row['before']['held']}, after {row['after']['held']}", flush=True)
    return row


def report(rows: list[dict[str, Any]], baseline: str, out: Path) -> None:
    """Print the Markdown table of `rows` and write them, with the baseline, to `out`."""
    print(f"\n| case | before ({baseline}) | after |\n|---|---|---|")
    for row in rows:
        cells = [_cell(row[name]) for name in ("before", "after")]
        print(f"| {row['case'].replace('_', ' ')} | {cells[0]} | {cells[1]} |")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"baseline": baseline, "cases": rows}, indent=2) + "\n")
    print(f"wrote {out}")


def _cell(result: dict[str, Any]) -> str:
    mark = {True: "held", False: "**failed**", None: "not run"}[result["held"]]
    return f"{mark}: {result['detail'].replace('|', '/')}"
