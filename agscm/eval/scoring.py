"""What a table cell measures: predictions, accuracy, success on clean-correct images, delta size."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from agscm.attacks.craft import model_device


def predict(model: nn.Module, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """Top-1 classes for float32 (N, C, H, W) images in [0, 1]."""
    device = model_device(model)
    classes = np.empty(len(images), dtype=np.int64)
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size]))
            classes[start:start + batch_size] = model(batch.to(device)).argmax(1).cpu().numpy()
    return classes


@dataclass(frozen=True)
class Score:
    """A target's accuracy on adversarial images, and the attack's success where it was right."""

    accuracy: float
    success_rate: float  # fooled / clean-correct; 0 when the target got nothing right
    clean_correct: int


def score(predictions: np.ndarray, labels: np.ndarray, clean_correct: np.ndarray) -> Score:
    """Score adversarial predictions against the labels and the clean-correct mask."""
    right = predictions == labels
    count = int(clean_correct.sum())
    fooled = int((~right & clean_correct).sum())
    return Score(float(right.mean()) if len(labels) else 0.0, fooled / count if count else 0.0,
                 count)


@dataclass(frozen=True)
class DeltaSize:
    """Mean and max L-inf and mean L2 of the perturbations of a crafted set."""

    mean_linf: float
    max_linf: float
    mean_l2: float


def delta_size(adversarial: np.ndarray, clean: np.ndarray) -> DeltaSize:
    delta = (adversarial - clean).reshape(len(clean), -1)
    if not len(delta):
        return DeltaSize(0.0, 0.0, 0.0)
    linf = np.abs(delta).max(axis=1)
    return DeltaSize(float(linf.mean()), float(linf.max()),
                     float(np.linalg.norm(delta, axis=1).mean()))
