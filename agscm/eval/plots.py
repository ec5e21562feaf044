"""Figures, drawn with matplotlib's Agg backend (no display needed) and written atomically."""

from __future__ import annotations

from pathlib import Path

from agscm.atomic import atomic_path
from agscm.eval.sweep import SweepResult


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
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as temp:
            figure.savefig(temp, format="png")
    finally:
        plt.close(figure)
    return path
