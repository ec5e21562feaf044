"""`agscm attack`: one baseline against one source model, its images saved and scored.

The images go to an .npz (float arrays, as crafted) or a folder of 8-bit PNGs by class; the
PNGs are quantised by the runtime's rule, so an L-inf budget survives rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from agscm.atomic import write_json, write_with
from agscm.attacks.craft import craft
from agscm.attacks.registry import attack_settings, make_attack
from agscm.data import ImageSet, load_split
from agscm.errors import AgscmError
from agscm.eval.methods import check_fits
from agscm.eval.scoring import delta_size, predict
from agscm.models.registry import load_classifier
from agscm.runtime.arrays import quantize


@dataclass
class AttackRequest:
    """What `agscm attack` was asked for; None: the attack's or the data set's default."""

    method: str
    source: str
    data: str
    split: str = "test"
    limit: int | None = None
    eps: float | None = None
    norm: str = "linf"
    steps: int | None = None
    alpha: float | None = None
    lambda_ata: float | None = None
    layer: str | None = None
    out: Path | None = None  # None: runs/attack/<source>-<method>.npz
    batch_size: int = 250
    zoo_dir: Path | None = None
    device: str = "cpu"
    seed: int = 0


@dataclass
class AttackReport:
    summary: dict[str, Any]
    path: Path
    summary_path: Path


def run_attack(request: AttackRequest) -> AttackReport:
    """Craft, score on the source (clean and adversarial accuracy, success, delta's size,
    speed), save the images and the summary."""
    if request.batch_size < 1 or (request.limit is not None and request.limit < 1):
        raise AgscmError(f"batch size and limit must be >= 1, got {request.batch_size} and "
                         f"{request.limit}")
    images = load_split(request.data, request.split).subset(request.limit)
    model, meta = load_classifier(request.source, request.zoo_dir, device=request.device)
    check_fits(images, meta)
    baseline = make_attack(request.method, model, request.eps, channels=images.channels,
                           norm=request.norm, steps=request.steps, alpha=request.alpha,
                           lambda_ata=request.lambda_ata, layer=request.layer)
    torch.manual_seed(request.seed)
    result = craft(baseline, images, request.batch_size)
    clean = images.as_float()
    size = delta_size(result.adversarial, clean)
    correct = predict(model, clean, request.batch_size) == images.labels
    fooled = predict(model, result.adversarial, request.batch_size) != images.labels
    summary = {
        "method": request.method, "source": meta["name"], "source_path": meta["path"],
        "data": request.data, "split": request.split, "images": len(images),
        "settings": attack_settings(baseline), "eps": baseline.eps, "norm": baseline.norm,
        "clean_accuracy": float(correct.mean()),
        "adversarial_accuracy": float(1 - fooled.mean()),
        "success_rate": float(fooled[correct].mean()) if correct.any() else 0.0,
        "mean_linf": size.mean_linf, "max_linf": size.max_linf, "mean_l2": size.mean_l2,
        "seconds": result.seconds, "images_per_second": result.images_per_second,
    }
    path = request.out or Path("runs") / "attack" / f"{meta['name']}-{request.method}.npz"
    linf_eps = baseline.eps if baseline.norm == "linf" else None
    summary_path = save_crafted(path, images, result.adversarial, linf_eps, summary)
    return AttackReport(summary, path, summary_path)


def save_crafted(path: Path, images: ImageSet, adversarial: np.ndarray, linf_eps: float | None,
                 summary: dict[str, Any]) -> Path:
    """Write X.npz (+ X.summary.json) or a PNG folder (+ summary.json); returns the summary
    path. PNGs keep within `linf_eps` of the clean pixels in 8-bit steps (None: L2, rounded)."""
    if path.suffix == ".npz":
        write_with(path, lambda handle: np.savez(handle, adversarial=adversarial,
                                              labels=images.labels))
        summary_path = path.with_name(f"{path.stem}.summary.json")
    else:
        if path.exists() and not path.is_dir():
            raise AgscmError(f"{path}: exists and is not a folder; give a folder or an .npz path")
        pixels = quantize(adversarial, images.images.transpose(0, 2, 3, 1), linf_eps)
        width = len(str(max(len(images) - 1, 0)))
        for index, (image, label) in enumerate(zip(pixels, images.labels, strict=True)):
            target = path / images.classes[int(label)] / f"{index:0{width}d}.png"
            picture = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
            write_with(target, lambda handle, picture=picture: picture.save(handle, format="PNG"))
        summary_path = path / "summary.json"
    write_json(summary_path, summary)
    return summary_path
