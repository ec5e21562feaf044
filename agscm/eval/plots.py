"""Figures, drawn with matplotlib's Agg backend (no display needed) and written atomically."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import cycle
from pathlib import Path
from typing import Any

from agscm.atomic import atomic_path
from agscm.eval.sweep import SweepResult


def _save_png(figure: Any, path: Path) -> Path:
    """Lay `figure` out and write it to `path` as PNG, atomically."""
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temp:
        figure.savefig(temp, format="png")
    return path


def plot_sweep(result: SweepResult, path: Path) -> Path:
    """Attack success rate vs lambda, on the target (transfer) and the source (white-box)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    lambdas = [row.lambda_gradcam for row in result.rows]
    figure, axes = plt.subplots(figsize=(5.5, 3.8), dpi=120)
    try:
        axes.plot(lambdas, [row.success_rate for row in result.rows], "o-",
                  label=f"target {result.target} (transfer)")
        axes.plot(lambdas, [row.source_success_rate for row in result.rows], "s--", alpha=0.6,
                  label=f"source {result.source} (white-box)")
        axes.set_xlabel("lambda (Grad-CAM loss weight)")
        axes.set_ylabel("attack success rate")
        axes.set_ylim(0, 1.02)
        axes.set_title(f"AEG-GC lambda sweep: {result.source} -> {result.target}")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
        return _save_png(figure, path)
    finally:
        plt.close(figure)


@dataclass(frozen=True)
class Curve:
    """One generator's training log: validation accuracy of each model after each epoch."""

    label: str
    images_seen: list[int]
    accuracy: dict[str, list[float]]  # model -> one value per epoch


def training_curve(label: str, history: list[dict[str, Any]]) -> Curve:
    """A `Curve` from a generator's per-epoch log (`<checkpoint>.log.json`); a log from before
    `images_seen` was recorded counts each epoch's images from its speed and seconds."""
    seen, total = [], 0
    for row in history:
        total = row.get("images_seen") or total + round(row["images_per_second"] * row["seconds"])
        seen.append(total)
    models = [key[len("val_acc["):-1] for key in history[0] if key.startswith("val_acc[")]
    return Curve(label, seen, {m: [row[f"val_acc[{m}]"] for row in history] for m in models})


def plot_training(curves: list[Curve], targets: list[str], levels: dict[str, dict[str, float]],
                  path: Path, title: str) -> Path:
    """One panel per target: its validation accuracy against images seen for every curve
    that watched it, and each baseline's accuracy on the same images as a horizontal line
    (`levels`: target -> method -> accuracy). Lower is stronger."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, panels = plt.subplots(1, len(targets), figsize=(5.2 * len(targets), 3.9), dpi=120,
                                  squeeze=False)
    try:
        for axes, target in zip(panels[0], targets, strict=True):
            for curve in curves:
                if target in curve.accuracy:
                    axes.plot(curve.images_seen, curve.accuracy[target], "o-", markersize=3,
                              label=curve.label)
            for (method, level), style in zip(levels.get(target, {}).items(),
                                              cycle(("--", ":", "-.", (0, (5, 1))))):
                axes.axhline(level, color="grey", linestyle=style, label=f"{method} ({level:.1%})")
            axes.set_xscale("log")
            axes.set_xlabel("training images seen")
            axes.set_ylabel("validation accuracy (lower = stronger)")
            axes.set_ylim(0, 1)
            axes.set_title(target)
            axes.grid(alpha=0.3)
            axes.legend(fontsize=7)
        figure.suptitle(title, fontsize=10)
        return _save_png(figure, path)
    finally:
        plt.close(figure)
