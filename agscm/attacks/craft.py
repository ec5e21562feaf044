"""Run an attack over a whole data set in batches, with a progress bar and a throughput figure.

A full CIFAR-10 test set under PGD-20 takes tens of minutes on a CPU, so a craft can keep its
progress in a `CraftStore` and a killed one goes on where it stopped: the images done so far,
their seconds and torch's random state (PGD's random starts), so the finished set is the one an
uninterrupted craft gives, bit for bit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

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


@dataclass
class CraftState:
    """A craft's progress: the first `done` adversarial images, the seconds they took, the batch
    size that cut them and the random state to draw the next batch's starts from."""

    done: int
    adversarial: np.ndarray
    seconds: float
    batch_size: int
    cpu_rng: np.ndarray
    cuda_rng: np.ndarray | None  # only when the model is on a GPU


class CraftStore(Protocol):
    """Where a craft keeps its progress (agscm.eval.cache keeps it beside the finished set)."""

    def load(self) -> CraftState | None: ...

    def save(self, state: CraftState) -> None: ...


SAVE_EVERY_SECONDS = 60.0  # a save of a CIFAR-10 test set's progress takes well under 1 s


def model_device(model: torch.nn.Module) -> torch.device:
    """Where the model's weights live (CPU for a model without any)."""
    tensor = next(iter(model.parameters()), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def craft(attack: Attack, data: ImageSet, batch_size: int, progress: bool = True,
          store: CraftStore | None = None) -> CraftResult:
    """Attack every image of `data` against `attack.model` (on the model's device). With a
    `store`, resume from the progress it holds and save progress after a batch once
    SAVE_EVERY_SECONDS have passed (not after the last: the caller stores the finished set)."""
    device = model_device(attack.model)
    adversarial = np.empty(data.images.shape, dtype=np.float32)
    done, earlier = 0, 0.0
    state = store.load() if store is not None else None
    if state is not None and _resumable(state, data, batch_size, device):
        done, earlier = state.done, state.seconds
        adversarial[:done] = state.adversarial
        _set_rng(state, device)
    start = last_save = time.perf_counter()
    with make_progress(transient=True, disable=not progress) as bar:
        task = bar.add_task(f"{attack.name} eps {attack.eps:.4g}",
                            total=batch_count(data, batch_size),
                            completed=done // batch_size, metrics="")
        rest = ImageSet(data.images[done:], data.labels[done:], data.classes, data.name)
        for images, labels in iterate_batches(rest, batch_size, device=device):
            adversarial[done:done + len(labels)] = attack(images, labels).cpu().numpy()
            done += len(labels)
            now = time.perf_counter()
            bar.update(task, advance=1, metrics=format_metrics(
                {"img/s": done / max(earlier + now - start, 1e-9)}))
            if store is not None and done < len(data) and now - last_save >= SAVE_EVERY_SECONDS:
                store.save(_state(adversarial[:done], earlier + now - start, batch_size, device))
                last_save = time.perf_counter()
    seconds = earlier + time.perf_counter() - start
    return CraftResult(adversarial, seconds, len(data) / max(seconds, 1e-9))


def _resumable(state: CraftState, data: ImageSet, batch_size: int, device: torch.device) -> bool:
    """Progress cut by another batch size would draw other random starts; start over then."""
    return (state.batch_size == batch_size and 0 < state.done < len(data)
            and state.done % batch_size == 0
            and state.adversarial.shape == (state.done, *data.images.shape[1:])
            and (state.cuda_rng is not None) == (device.type == "cuda"))


def _state(adversarial: np.ndarray, seconds: float, batch_size: int,
           device: torch.device) -> CraftState:
    cuda_rng = torch.cuda.get_rng_state(device).numpy() if device.type == "cuda" else None
    return CraftState(len(adversarial), adversarial, seconds, batch_size,
                      torch.get_rng_state().numpy(), cuda_rng)


def _set_rng(state: CraftState, device: torch.device) -> None:
    torch.set_rng_state(torch.from_numpy(state.cpu_rng))
    if state.cuda_rng is not None:
        torch.cuda.set_rng_state(torch.from_numpy(state.cuda_rng), device)
