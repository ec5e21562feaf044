"""`agscm attack METHOD`: run a gradient baseline against a source model, save the images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agscm.commands.options import TorchDevice
from agscm.commands.zoo import ZooDir
from agscm.errors import one_line_errors


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
    from agscm.eval.single_attack import AttackRequest, run_attack

    report = run_attack(AttackRequest(
        method=method, source=source, data=data, split=split, limit=limit, eps=eps, norm=norm,
        steps=steps, alpha=alpha, lambda_ata=lambda_ata, layer=layer, out=out,
        batch_size=batch_size, zoo_dir=zoo_dir, device=device, seed=seed))
    summary = report.summary
    typer.echo(f"{method} vs {summary['source']} (eps {summary['eps']:.4g} {summary['norm']}): "
               f"accuracy {summary['clean_accuracy']:.2%} -> "
               f"{summary['adversarial_accuracy']:.2%}, success {summary['success_rate']:.2%}, "
               f"mean L-inf {summary['mean_linf']:.4f}, mean L2 {summary['mean_l2']:.3f}, "
               f"{summary['images_per_second']:.1f} images/s")
    typer.echo(f"wrote {report.path} and {report.summary_path}")


def register(app: typer.Typer) -> None:
    app.command("attack")(attack)
