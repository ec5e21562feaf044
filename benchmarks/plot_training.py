"""Validation accuracy of the targets against training images seen, one line per generator,
with the baselines' accuracy on the same validation images as horizontal lines (issue 28).

    python benchmarks/plot_training.py --log transfer=runs/long/transfer.log.json \
        --log gcfeat=runs/long/gcfeat.log.json \
        --targets cifar10-vgg-natural cifar10-mobilenet-natural \
        --table runs/eval/val-baselines/transfer.json --source cifar10-natural \
        --baselines ata pgd:steps=20 --out docs/training-cifar10.png

Each log is a generator checkpoint's `<checkpoint>.log.json`, trained with `agscm train
--monitor TARGET` (or with the target as a source) so that every epoch scores the target on the
validation images. `--selection` adds every candidate of a `benchmarks/select_recipe.py` result
(its per-epoch training records) as a curve of its own, so short candidates sit beside a long run.

The table is an `agscm evaluate --split val --limit N` run on the same first
N validation images (the trainer's `--val-limit N`), from the same source.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from agscm.eval.plots import Curve, plot_training, training_curve


def baseline_levels(table: Path, source: str, methods: list[str],
                    targets: list[str]) -> dict[str, dict[str, float]]:
    """target -> method -> accuracy, read from a transfer table's cells."""
    cells = json.loads(table.read_text())["cells"]
    levels: dict[str, dict[str, float]] = {target: {} for target in targets}
    for cell in cells:
        if cell["source"] == source and cell["method"] in methods and cell["target"] in targets:
            levels[cell["target"]][cell["method"]] = cell["accuracy"]
    missing = [f"{m} on {t}" for t in targets for m in methods if m not in levels[t]]
    if missing:
        raise SystemExit(f"{table}: no cell for {', '.join(missing)} from {source}")
    return levels


def selection_curves(path: Path) -> list[Curve]:
    """One curve per candidate and source of a select_recipe.py result, labelled by name."""
    records = json.loads(path.read_text()).get("training")
    if not isinstance(records, dict):
        raise SystemExit(f"{path}: no per-candidate training records (select_recipe.py JSON)")
    return [training_curve(name if len(histories) == 1 else f"{name} #{index + 1}", history)
            for name, histories in records.items()
            for index, history in enumerate(histories) if history]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--log", action="append", default=[], metavar="LABEL=PATH",
                        help="a generator's per-epoch log; repeat for more")
    parser.add_argument("--selection", type=Path, default=None,
                        help="a select_recipe.py result: each candidate's training record")
    parser.add_argument("--targets", nargs="+", required=True)
    parser.add_argument("--table", type=Path, default=None, help="transfer.json of the baselines")
    parser.add_argument("--source", default=None, help="the baselines' source in --table")
    parser.add_argument("--baselines", nargs="*", default=["ata", "pgd"])
    parser.add_argument("--title", default="Validation accuracy of the targets during training")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    curves = []
    for item in args.log:
        label, _, path = item.partition("=")
        if not path:
            raise SystemExit(f"--log {item!r}: give LABEL=PATH")
        curves.append(training_curve(label, json.loads(Path(path).read_text())))
    if args.selection is not None:
        curves += selection_curves(args.selection)
    if not curves:
        raise SystemExit("nothing to draw: give --log or --selection")
    levels = {}
    if args.table is not None:
        if args.source is None:
            raise SystemExit("--table needs --source (whose baselines to draw)")
        levels = baseline_levels(args.table, args.source, args.baselines, args.targets)
    print(f"wrote {plot_training(curves, args.targets, levels, args.out, args.title)}")


if __name__ == "__main__":
    main()
