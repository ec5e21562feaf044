"""One look for every progress bar (rich, with free-form metric text after the bar), and one
engine for commands made of stages (`agscm reproduce`, `agscm demo`)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

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


def print_warning(console: Console, text: str) -> None:
    """One `warning:` line, printed as given: paths may hold brackets that rich would read as
    markup."""
    console.print(f"warning: {text}", markup=False, highlight=False, soft_wrap=True,
                  style="yellow")


def format_metrics(values: dict[str, float]) -> str:
    """`loss 0.123 acc 98.10%`-style text for the bar; accuracies (`*acc`, `*acc[model]`) in
    percent."""
    parts = []
    for key, value in values.items():
        rate = key.partition("[")[0].endswith("acc")
        parts.append(f"{key} {percent(value)}" if rate else f"{key} {value:.4g}")
    return " ".join(parts)


class Stages:
    """Numbered, timed stages: each runs under a heading `2/5 title` and leaves its wall time
    in `seconds`. `titles` names every stage in order; a stage may give a fuller title when it
    starts (one known only then, e.g. the lambda a sweep chose)."""

    def __init__(self, console: Console, titles: Mapping[str, str]) -> None:
        self.console = console
        self.titles = dict(titles)
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, key: str, title: str | None = None) -> Iterator[None]:
        number = list(self.titles).index(key) + 1
        self.console.rule(f"{number}/{len(self.titles)} {title or self.titles[key]}")
        start = time.perf_counter()
        yield
        self.seconds[key] = time.perf_counter() - start
