"""demo.png: clean image, adversarial image, perturbation, and the Grad-CAM maps of both.

Each row is one test image of a seeded random sample, marked with its outcome on the source
(fooled, not fooled, or already misclassified clean); the title gives the sample's success
rate, counted as the table counts it (on the images the source classified correctly). The
Grad-CAM maps are those of the true class (the map the AEG-GC loss pushes away), both divided
by the clean map's peak as in the loss, so a map that fades or moves on the adversarial image
is what the generator was trained to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from agscm.atomic import atomic_path
from agscm.formatting import percent
from agscm.models.gradcam import GradCAM

DPI = 100
CELL_INCHES = 1.8  # width and height of one panel with its title
HEADER_INCHES = 1.0  # the figure title (two lines) and column names
FOOLED, NOT_FOOLED, MISCLASSIFIED = "fooled", "not fooled", "misclassified clean"
OUTCOME_COLOURS = {FOOLED: "red", NOT_FOOLED: "green", MISCLASSIFIED: "grey"}
COLUMNS = ("clean\ntrue → predicted", "adversarial\ntrue → predicted", "perturbation\n(±eps)",
           "Grad-CAM, clean\n(true class)", "Grad-CAM, adversarial\n(true class)")


def figure_pixels(rows: int) -> tuple[int, int]:
    """(width, height) of demo.png for `rows` examples."""
    return round(len(COLUMNS) * CELL_INCHES * DPI), round((rows * CELL_INCHES + HEADER_INCHES) * DPI)


@dataclass
class Example:
    """One row: float (C, H, W) images in [0, 1], maps (H, W) in [0, 1], labels and predictions."""

    clean: np.ndarray
    adversarial: np.ndarray
    label: int
    clean_prediction: int
    adversarial_prediction: int
    clean_map: np.ndarray
    adversarial_map: np.ndarray

    @property
    def outcome(self) -> str:
        if self.clean_prediction != self.label:
            return MISCLASSIFIED
        return FOOLED if self.adversarial_prediction != self.label else NOT_FOOLED


def success(examples: list[Example]) -> tuple[int, int]:
    """(fooled, classified correctly when clean): the table's success rate, on these rows."""
    outcomes = [example.outcome for example in examples]
    return outcomes.count(FOOLED), len(outcomes) - outcomes.count(MISCLASSIFIED)


def sample_title(examples: list[Example], source: str, eps: float, seed: int,
                 population: int) -> str:
    """The figure's title: what the sample is (and its seed) and its success rate."""
    fooled, correct = success(examples)
    share = percent(fooled / correct) if correct else "undefined"
    return (f"AEG-GC against {source} (eps {eps:.3g}): fooled {fooled} of {correct} correctly "
            f"classified ({share})\nrandom sample of {len(examples)} of {population} perturbed "
            f"test images, seed {seed}")


def explain(model: nn.Module, clean: np.ndarray, adversarial: np.ndarray,
            labels: np.ndarray) -> list[Example]:
    """Predictions and true-class Grad-CAM maps (upsampled to the image) for each pair."""
    cam = GradCAM(model)
    classes = torch.from_numpy(labels).long()
    outputs = [cam(torch.from_numpy(batch), classes, create_graph=False)
               for batch in (clean, adversarial)]
    (clean_maps, clean_logits), (adv_maps, adv_logits) = outputs
    peaks = clean_maps.flatten(1).amax(dim=1).clamp_min(1e-12).view(-1, 1, 1)
    size = clean.shape[-2:]
    maps = [nn.functional.interpolate((m / peaks)[:, None], size=size, mode="bilinear",
                                      align_corners=False)[:, 0].clamp(0, 1).numpy()
            for m in (clean_maps, adv_maps)]
    return [Example(clean[i], adversarial[i], int(labels[i]), int(clean_logits[i].argmax()),
                    int(adv_logits[i].argmax()), maps[0][i], maps[1][i])
            for i in range(len(labels))]


def _picture(image: np.ndarray) -> tuple[np.ndarray, str | None]:
    """(H, W) with a grey colormap, or (H, W, 3) as it is."""
    return (image[0], "gray") if image.shape[0] == 1 else (image.transpose(1, 2, 0), None)


def draw(examples: list[Example], class_names: list[str], eps: float, title: str,
         path: Path) -> Path:
    """Write the grid to `path` (PNG, Agg backend, exactly figure_pixels(len(examples)))."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    width, height = figure_pixels(len(examples))
    figure, axes = plt.subplots(len(examples), len(COLUMNS), figsize=(width / DPI, height / DPI),
                                dpi=DPI, squeeze=False)
    try:
        for row, example in zip(axes, examples, strict=True):
            _draw_row(row, example, class_names, eps)
        inches = height / DPI
        figure.tight_layout(rect=(0, 0, 1, 1 - HEADER_INCHES / inches), h_pad=0.6)
        figure.suptitle(title, y=1 - 0.08 / inches, va="top", fontsize=10)
        for axis, name in zip(axes[0], COLUMNS, strict=True):
            box = axis.get_position()
            figure.text((box.x0 + box.x1) / 2, 1 - (HEADER_INCHES - 0.08) / inches, name,
                        ha="center", va="bottom", fontsize=9, fontweight="bold")
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as temp:
            figure.savefig(temp, format="png", dpi=DPI)
    finally:
        plt.close(figure)
    return path


def _draw_row(axes: np.ndarray, example: Example, names: list[str], eps: float) -> None:
    truth = names[example.label]
    clean, cmap = _picture(example.clean)
    adversarial, _ = _picture(example.adversarial)
    delta = example.adversarial - example.clean
    if delta.shape[0] == 1:
        axes[2].imshow(delta[0], cmap="RdBu_r", vmin=-eps, vmax=eps)
    else:
        axes[2].imshow(np.clip(0.5 + delta.transpose(1, 2, 0) / (2 * eps), 0, 1))
    for axis, image in ((axes[0], clean), (axes[1], adversarial), (axes[3], clean),
                        (axes[4], clean)):
        axis.imshow(image, cmap=cmap, vmin=0, vmax=1)
    axes[3].imshow(example.clean_map, cmap="jet", alpha=0.5, vmin=0, vmax=1)
    axes[4].imshow(example.adversarial_map, cmap="jet", alpha=0.5, vmin=0, vmax=1)
    axes[0].set_title(f"{truth} → {names[example.clean_prediction]}", fontsize=8,
                      color="green" if example.clean_prediction == example.label else "grey")
    axes[1].set_title(f"{truth} → {names[example.adversarial_prediction]}: {example.outcome}",
                      fontsize=8, color=OUTCOME_COLOURS[example.outcome])
    axes[2].set_title(f"max |delta| {np.abs(delta).max():.3f}", fontsize=8)
    axes[3].set_title(f"class {truth}", fontsize=8)
    axes[4].set_title(f"class {truth}", fontsize=8)
    for axis in axes:
        axis.set_xticks([])
        axis.set_yticks([])
