"""`agscm attack METHOD`: run a gradient baseline against a source model, save the images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer

from agscm.atomic import write_with
from agscm.commands.options import TorchDevice
from agscm.commands.zoo import ZooDir
from agscm.errors import AgscmError, one_line_errors

if TYPE_CHECKING:
    from agscm.data import ImageSet


@one_line_errors
def attack(
    method: Annotated[str, typer.Argument(help="fgsm, pgd, mifgsm, ata or noise (the random floor).")],
    source: Annotated[str, typer.Option(help="Source model: a zoo name or a .safetensors path.")],
    data: Annotated[str, typer.Option(help="Data set: a path or 'mnist-sample'.")],
    split: Annotated[str, typer.Option(help="train or test.")] = "test",
    limit: Annotated[int | None, typer.Option(help="Attack only the first N images.")] = None,
    eps: Annotated[float | None, typer.Option(
        help="Budget \\[default: 0.3 grey, 8/255 colour].")] = None,
    norm: Annotated[str, typer.Option(help="linf or l2.")] = "linf",
    steps: Annotated[int | None, typer.Option(
        help="Iterations \\[default: 40 grey, 10 colour; 10 for mifgsm].")] = None,
    alpha: Annotated[float | None, typer.Option(
        help="Step size \\[default: follows eps and steps].")] = None,
    lambda_ata: Annotated[float | None, typer.Option(help="ata: Grad-CAM term weight.")] = None,
    layer: Annotated[str | None, typer.Option(
        help="ata: Grad-CAM layer \\[default: the model's].")] = None,
    out: Annotated[Path | None, typer.Option(
        help="X.npz (float arrays) or a folder (PNGs as <class>/<index>.png) "
             "\\[default: runs/attack/<source>-<method>.npz].")] = None,
    batch_size: Annotated[int, typer.Option(help="Images per attack batch.")] = 250,
    zoo_dir: ZooDir = None,
    device: TorchDevice = "auto",
    seed: Annotated[int, typer.Option(help="Seed for random starts.")] = 0,
) -> None:
    """Craft adversarial images with a baseline and report the source model's accuracy on them.

    Example: agscm attack pgd --source mnist-adv --data ../shared/data/mnist --out pgd.npz
    """
    import torch

    from agscm.attacks.craft import craft
    from agscm.attacks.registry import attack_settings, make_attack
    from agscm.data import load_split
    from agscm.eval.methods import check_fits
    from agscm.eval.scoring import delta_size, predict
    from agscm.models.registry import load_classifier

    if batch_size < 1 or (limit is not None and limit < 1):
        raise AgscmError(f"batch size and limit must be >= 1, got {batch_size} and {limit}")
    images = load_split(data, split).subset(limit)
    model, meta = load_classifier(source, zoo_dir, device=device)
    check_fits(images, meta)
    baseline = make_attack(method, model, eps, channels=images.channels, norm=norm, steps=steps,
                           alpha=alpha, lambda_ata=lambda_ata, layer=layer)
    torch.manual_seed(seed)
    result = craft(baseline, images, batch_size)
    clean = images.as_float()
    size = delta_size(result.adversarial, clean)
    correct = predict(model, clean, batch_size) == images.labels
    fooled = predict(model, result.adversarial, batch_size) != images.labels
    summary = {
        "method": method, "source": meta["name"], "source_path": meta["path"], "data": data,
        "split": split, "images": len(images), "settings": attack_settings(baseline),
        "clean_accuracy": float(correct.mean()),
        "adversarial_accuracy": float(1 - fooled.mean()),
        "success_rate": float(fooled[correct].mean()) if correct.any() else 0.0,
        "mean_linf": size.mean_linf, "max_linf": size.max_linf, "mean_l2": size.mean_l2,
        "seconds": result.seconds, "images_per_second": result.images_per_second,
    }
    path = out or Path("runs") / "attack" / f"{meta['name']}-{method}.npz"
    summary_path = _save(path, images, result.adversarial, baseline.eps, baseline.norm, summary)
    typer.echo(f"{method} vs {meta['name']} (eps {baseline.eps:.4g} {baseline.norm}): accuracy "
               f"{summary['clean_accuracy']:.2%} -> {summary['adversarial_accuracy']:.2%}, "
               f"success {summary['success_rate']:.2%}, mean L-inf {summary['mean_linf']:.4f}, "
               f"mean L2 {summary['mean_l2']:.3f}, {result.images_per_second:.1f} images/s")
    typer.echo(f"wrote {path} and {summary_path}")


def _save(path: Path, images: ImageSet, adversarial: np.ndarray, eps: float, norm: str,
          summary: dict[str, Any]) -> Path:
    """Write X.npz (+ X.summary.json) or a PNG folder (+ summary.json); returns the summary path."""
    if path.suffix == ".npz":
        write_with(path, lambda handle: np.savez(handle, adversarial=adversarial,
                                              labels=images.labels))
        summary_path = path.with_name(f"{path.stem}.summary.json")
    else:
        if path.exists() and not path.is_dir():
            raise AgscmError(f"{path}: exists and is not a folder; give a folder or an .npz path")
        pixels = _to_uint8(adversarial, images.images, eps, norm)
        width = len(str(max(len(images) - 1, 0)))
        for index, (image, label) in enumerate(zip(pixels, images.labels, strict=True)):
            target = path / images.classes[int(label)] / f"{index:0{width}d}.png"
            write_with(target, lambda handle, image=image: _png(image).save(handle, format="PNG"))
        summary_path = path / "summary.json"
    text = json.dumps(summary, indent=2) + "\n"
    write_with(summary_path, lambda handle: handle.write(text.encode()))
    return summary_path


def _to_uint8(adversarial: np.ndarray, clean: np.ndarray, eps: float, norm: str) -> np.ndarray:
    """8-bit pixels; for L-inf the rounded step is clipped so the eps bound survives rounding."""
    step = np.rint(adversarial * 255.0) - clean.astype(np.float32)
    if norm == "linf":
        limit = np.floor(eps * 255.0 + 1e-6)
        step = np.clip(step, -limit, limit)
    return np.clip(clean + step, 0, 255).astype(np.uint8)


def _png(image: np.ndarray) -> Any:
    from PIL import Image

    return Image.fromarray(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0))


def register(app: typer.Typer) -> None:
    app.command("attack")(attack)
