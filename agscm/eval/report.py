"""Markdown, CSV and JSON for transfer tables and sweeps; every file is written atomically."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from agscm.atomic import write_json, write_text
from agscm.eval.sweep import SweepResult
from agscm.eval.transfer import Cell, TransferResult
from agscm.formatting import percent


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else [],
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return write_text(path, buffer.getvalue())


def epochs_text(count: int) -> str:
    return f"{count} epoch" + ("" if count == 1 else "s")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def number(value: float) -> str:
    """Measured sizes (L-inf); rates are `percent`."""
    return f"{value:.4f}"


Reference = Callable[[Cell], "float | None"]


def cell_grid(result: TransferResult, value: Callable[[Cell], float],
              best: Callable[[list[float]], float],
              reference: Reference | None = None) -> list[list[str]]:
    """Rows `source | method | one value per target`; the best value of each (source, target)
    group is bold (only where a source has two or more methods), white-box values italic, and
    `reference(cell)` (e.g. the paper's number), where it has one, in brackets after it."""
    groups: dict[tuple[str, str], list[float]] = {}
    for cell in result.cells:
        groups.setdefault((cell.source, cell.target), []).append(value(cell))
    grid = []
    for source, method in result.rows():
        row = [source, method]
        for target in result.targets:
            cell = result.cell(source, method, target)
            if cell is None:
                row.append("")
                continue
            text = percent(value(cell))
            text = f"_{text}_" if cell.white_box else text
            group = groups[(source, target)]
            text = f"**{text}**" if len(group) > 1 and value(cell) == best(group) else text
            known = reference(cell) if reference else None
            row.append(text if known is None else f"{text} ({percent(known)})")
        grid.append(row)
    return grid


def transfer_sections(result: TransferResult, reference: Reference | None = None) -> str:
    """The tables of a transfer result (clean accuracy, accuracy, success, collapse, size and
    speed); `reference` adds a bracketed number to accuracy cells (the paper's)."""
    header = ["source", "method", *result.targets]
    legend = ("Rows: source x method; columns: target. _Italic_: white-box cells (the target is "
              "the source, or one of the models the generator was trained against). **Bold**: "
              "the best method for that source and target.")
    clean = markdown_table(["model", "clean accuracy"],
                           [[name, percent(acc)] for name, acc in result.clean_accuracy.items()])
    sizes = markdown_table(
        ["source", "method", "mean L-inf", "max L-inf", "mean L2", "crafting images/s",
         "from cache"],
        [[s.source, s.method, number(s.mean_linf), number(s.max_linf), f"{s.mean_l2:.3f}",
          f"{s.images_per_second:.1f}", "yes" if s.cached else "no"] for s in result.sets])
    return "\n\n".join([
        "### Clean accuracy", clean,
        "### Target accuracy on adversarial images (lower = stronger)", legend,
        markdown_table(header, cell_grid(result, lambda c: c.accuracy, min, reference)),
        "### Attack success rate on images the target classified correctly (higher = stronger)",
        markdown_table(header, cell_grid(result, lambda c: c.success_rate, max)),
        "### Collapse: share of all images sent to the target's most common wrong class",
        "Near 1 when one universal pattern does the work (every image becomes the same class); "
        "bold: the lowest.",
        markdown_table(header, cell_grid(result, lambda c: c.collapse, min)),
        "### Perturbation size and crafting speed",
        "Crafting speed is measured when a set is crafted (a cached set keeps its figure).",
        sizes])


def transfer_markdown(result: TransferResult) -> str:
    config = result.config
    return "\n\n".join([
        "# Transfer table",
        f"Command: `{config.command()}`",
        f"Data: `{config.data}` ({config.split} split, {result.images} images); L-inf eps "
        f"{result.eps:.4g}; seed {config.seed}.",
        *([] if result.complete else [partial_notice(result)]),
        transfer_sections(result)]) + "\n"


def partial_notice(result: TransferResult) -> str:
    rerun = ("The same command goes on from here (the crafted sets are cached)."
             if result.config.cache_dir else
             "Without a cache, the same command crafts every set again.")
    return (f"**Partial table: {len(result.sets)} of {result.planned_sets} sets scored so far.** "
            + rerun)


def transfer_rows(result: TransferResult) -> list[dict[str, Any]]:
    """One CSV row per cell, with its set's size and speed, and whether the table is complete
    (a CSV has no other place to say that its rows are a partial table's)."""
    sets = {(s.source, s.method): s for s in result.sets}
    rows = []
    for cell in result.cells:
        crafted = sets[(cell.source, cell.method)]
        rows.append({**asdict(cell), "target_clean_accuracy": result.clean_accuracy[cell.target],
                     "images": result.images, "eps": result.eps,
                     "mean_linf": crafted.mean_linf, "max_linf": crafted.max_linf,
                     "mean_l2": crafted.mean_l2, "images_per_second": crafted.images_per_second,
                     "seconds": crafted.seconds, "cached": crafted.cached,
                     "table_complete": result.complete})
    return rows


def write_transfer(result: TransferResult, out: Path, stem: str = "transfer") -> list[Path]:
    """`<stem>.md`, `<stem>.csv` and `<stem>.json` in `out`."""
    return [write_text(out / f"{stem}.md", transfer_markdown(result)),
            write_csv(out / f"{stem}.csv", transfer_rows(result)),
            write_json(out / f"{stem}.json", result.to_json())]


def sweep_table(result: SweepResult) -> str:
    """One row per lambda: success on the target (bold: the highest) and on the source."""
    best = result.best()
    rows = [[f"{row.lambda_gradcam:g}",
             f"**{percent(row.success_rate)}**" if row is best else percent(row.success_rate),
             percent(row.target_accuracy), percent(row.source_success_rate),
             number(row.mean_linf), f"{row.mean_l2:.3f}", str(row.epochs)]
            for row in result.rows]
    return markdown_table(["lambda", f"success on {result.target}",
                           f"{result.target} accuracy", f"success on {result.source} (white-box)",
                           "mean L-inf", "mean L2", "epochs"], rows)


def sweep_markdown(result: SweepResult, plot_name: str) -> str:
    config = result.config
    return "\n\n".join([
        f"# Lambda sweep: {result.source} -> {result.target}",
        f"Command: `{config.command()}`",
        f"Each lambda trains its own generator ({epochs_text(config.epochs)} on "
        f"{config.train_limit or 'all'} training images). Success rate: the share of the images "
        f"a model classified correctly when clean that it misclassifies after the generator "
        f"(first {result.images} images of the {config.split} split; clean accuracy "
        f"{result.source} {percent(result.source_clean_accuracy)}, {result.target} "
        f"{percent(result.target_clean_accuracy)}).",
        sweep_table(result),
        f"![success rate vs lambda]({plot_name})"]) + "\n"


def write_sweep(result: SweepResult, out: Path, stem: str = "sweep") -> list[Path]:
    """`<stem>.md`, `<stem>.json` and `<stem>.png` in `out`."""
    from agscm.eval.plots import plot_sweep

    plot = plot_sweep(result, out / f"{stem}.png")
    return [write_text(out / f"{stem}.md", sweep_markdown(result, plot.name)),
            write_json(out / f"{stem}.json", result.to_json()), plot]
