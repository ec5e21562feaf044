"""Run an attack over a whole data set in batches, with a progress bar and a throughput figure."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from agscm.attacks.base import Attack
from agscm.data import ImageSet
from agscm.models.batches import batch_count, iterate_batches
from agscm.progress import format_metrics, make_progress


@dataclass
class CraftResult:
    """Adversarial images as float32 (N, C, H, W) in [0, 1], in the data set's order."""

    adversarial: np.ndarray
    seconds: float
    images_per_second: float


def model_device(model: torch.nn.Module) -> torch.device:
    """Where the model's weights live (CPU for a model without any)."""
    tensor = next(iter(model.parameters()), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def craft(attack: Attack, data: ImageSet, batch_size: int, progress: bool = True) -> CraftResult:
    """Attack every image of `data` against `attack.model` (on the model's device)."""
    device = model_device(attack.model)
    adversarial = np.empty(data.images.shape, dtype=np.float32)
    start = time.perf_counter()
    done = 0
    with make_progress(transient=True, disable=not progress) as bar:
        task = bar.add_task(f"{attack.name} eps {attack.eps:.4g}",
                            total=batch_count(data, batch_size), metrics="")
        for images, labels in iterate_batches(data, batch_size, device=device):
            adversarial[done:done + len(labels)] = attack(images, labels).cpu().numpy()
            done += len(labels)
            rate = done / max(time.perf_counter() - start, 1e-9)
            bar.update(task, advance=1, metrics=format_metrics({"img/s": rate}))
    seconds = time.perf_counter() - start
    return CraftResult(adversarial, seconds, len(data) / max(seconds, 1e-9))
