"""One look for every progress bar: rich, with free-form metric text after the bar."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from agscm.formatting import percent


def make_progress(console: Console | None = None, transient: bool = False,
                  disable: bool = False) -> Progress:
    """A progress bar with `metrics` text (set via `progress.update(task, metrics=...)`)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[metrics]}"),
        console=console or Console(stderr=True),
        transient=transient,
        disable=disable,
    )


def format_metrics(values: dict[str, float]) -> str:
    """`loss 0.123 acc 98.10%`-style text for the bar; accuracies (`*acc`, `*acc[model]`) in
    percent."""
    parts = []
    for key, value in values.items():
        rate = key.partition("[")[0].endswith("acc")
        parts.append(f"{key} {percent(value)}" if rate else f"{key} {value:.4g}")
    return " ".join(parts)
