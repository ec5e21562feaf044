"""The perturbation budget a data set is attacked at, by default."""

from __future__ import annotations


def default_eps(channels: int) -> float:
    """The MadryLab challenge budgets: 0.3 for MNIST-like data, 8/255 for colour images."""
    return 0.3 if channels == 1 else 8 / 255
