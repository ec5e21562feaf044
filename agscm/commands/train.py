"""`agscm train`: train an AEG-GC generator against one or more source classifiers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agscm.commands.options import GeneratorPrecision, TorchDevice
from agscm.errors import AgscmError, one_line_errors


def parse_source(text: str) -> tuple[str, str | None, float]:
    """`NAME[:LAYER][@WEIGHT]` -> (name, layer, weight), e.g. `mnist-adv:relu2@0.5`."""
    name, _, weight_text = text.partition("@")
    name, _, layer = name.partition(":")
    try:
        weight = float(weight_text) if weight_text else 1.0
    except ValueError:
        raise AgscmError(f"bad source weight in {text!r}; expected NAME[:LAYER][@WEIGHT]") from None
    if not name:
        raise AgscmError(f"empty source name in {text!r}; expected NAME[:LAYER][@WEIGHT]")
    return name, layer or None, weight


@one_line_errors
def train(
    data: Annotated[str, typer.Argument(help="Training data: a path or 'mnist-sample'.")],
    source: Annotated[list[str], typer.Option(
        help="Source model NAME[:LAYER][@WEIGHT] (zoo name or checkpoint); repeat for an "
             "ensemble.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Generator checkpoint to write.")],
    recipe: Annotated[str, typer.Option(
        help="paper (AEG-GC as published) or transfer (the strongest black-box transfer we "
             "measured, with its own settings for colour images); the flags below override "
             "it.")] = "paper",
    zoo_dir: Annotated[Path | None, typer.Option(
        "--zoo", help="Zoo folder \\[default: $AGSCM_ZOO, else the checkout's committed zoo/, "
                  "else ~/.cache/agscm/zoo].")] = None,
    eps: Annotated[float | None, typer.Option(
        help="Perturbation bound \\[default: 0.3 grey, 8/255 colour].")] = None,
    norm: Annotated[str, typer.Option(help="linf or l2.")] = "linf",
    c: Annotated[float | None, typer.Option(
        help="Hinge bound on ||delta||_2 \\[default: 0.75*eps*sqrt(C*H*W)].")] = None,
    noise_weight: Annotated[float | None, typer.Option(
        help="Weight of the hinge L_noise (0: the L-inf box alone).")] = None,
    lambda_gradcam: Annotated[float | None, typer.Option(
        "--lambda", help="Weight of the Grad-CAM loss.")] = None,
    loss: Annotated[str | None, typer.Option(
        help="Adversarial loss: ce, cw, mse or rce (relativistic CE).")] = None,
    kappa: Annotated[float, typer.Option(help="CW margin.")] = 0.0,
    feature_weight: Annotated[float | None, typer.Option(
        help="Weight of the mid-layer feature distortion (cosine similarity).")] = None,
    feature_layer: Annotated[str | None, typer.Option(
        help="Layer for the feature distortion \\[default: the Grad-CAM layer].")] = None,
    adv_weight: Annotated[float | None, typer.Option(
        help="Weight of the adversarial loss (0: the feature objectives alone, and a source "
             "read only up to the feature layer).")] = None,
    cam_weight_copies: Annotated[int | None, typer.Option(
        help="gradcam-feature: masked copies its Grad-CAM channel weights average over.")] = None,
    cam_weight_keep: Annotated[float | None, typer.Option(
        help="gradcam-feature: the share of pixels each masked copy keeps.")] = None,
    objective: Annotated[list[str] | None, typer.Option(
        help="A further training objective NAME[@WEIGHT] (agscm.train.objectives.registry: "
             "noise, ce, cw, mse, rce, gradcam, feature); repeat for more.")] = None,
    diversity: Annotated[float | None, typer.Option(
        help="Probability of input diversity (random resize and pad) per batch.")] = None,
    view: Annotated[list[str] | None, typer.Option(
        help="A further input view NAME[@STRENGTH] (agscm.train.views.registry); repeat for "
             "more.")] = None,
    first_order: Annotated[bool, typer.Option(
        help="Detach the Grad-CAM channel weights (faster, not the paper's).")] = False,
    cam_normalize: Annotated[bool, typer.Option(
        help="Scale maps by the clean map's peak.")] = True,
    target: Annotated[int | None, typer.Option(
        help="Targeted mode: the class to push every image to.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs.")] = None,
    batch_size: Annotated[int, typer.Option(help="Batch size.")] = 128,
    lr: Annotated[float | None, typer.Option(help="Adam learning rate.")] = None,
    beta1: Annotated[float | None, typer.Option(
        help="Adam's beta1 \\[default: 0.9; the generator papers use 0.5].")] = None,
    schedule: Annotated[str | None, typer.Option(
        help="Learning rate: constant or cosine.")] = None,
    skip_gradient: Annotated[float, typer.Option(
        help="SGM: scale the gradient through the sources' residual branches by this gamma "
             "in (0, 1] \\[default: 1, off; needs a ResNet source].")] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed (same seed, same weights on CPU).")] = 0,
    width: Annotated[int | None, typer.Option(help="Generator width.")] = None,
    residual_blocks: Annotated[int | None, typer.Option(
        help="Generator residual blocks.")] = None,
    downsamplings: Annotated[int | None, typer.Option(
        help="Generator stride-2 stages, 0-2 (0: full resolution).")] = None,
    output: Annotated[str | None, typer.Option(
        help="How the generator's raw output is bounded: tanh, or clip (projection onto the "
             "eps-box, as CDA, LTP and BIA).")] = None,
    output_scale: Annotated[float | None, typer.Option(
        help="delta = eps * tanh(scale * raw).")] = None,
    smooth_sigma: Annotated[float | None, typer.Option(
        help="Gaussian blur of delta, in pixels (0: none).")] = None,
    train_limit: Annotated[int | None, typer.Option(
        help="Use only the first N training images.")] = None,
    val_limit: Annotated[int, typer.Option(help="Validation images per epoch.")] = 1000,
    monitor: Annotated[list[str] | None, typer.Option(
        help="A zoo model whose accuracy on the validation images each epoch reports beside "
             "the sources' (a target the generator never sees); repeat for more.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue an existing --out checkpoint.")] = False,
    device: TorchDevice = "auto",
    precision: GeneratorPrecision = "fp32",
) -> None:
    """Train a generator: AEG-GC as published (--recipe paper) or the transfer recipe.

    It trains on the training images without the validation split and reports each epoch
    on the validation split.

    Example: agscm train ../shared/data/mnist --source mnist-natural -o g.safetensors --recipe transfer
    """
    from agscm.data.registry import load_fit_and_val
    from agscm.train.recipes import recipe_settings
    from agscm.train.trainer import SourceSpec, TrainConfig, log_path, train_generator

    specs = [SourceSpec(*parse_source(text)) for text in source]
    splits = load_fit_and_val(data)  # read once: the recipe's settings follow its channels
    settings = recipe_settings(
        recipe, splits[0].channels, c=c, noise_weight=noise_weight,
        lambda_gradcam=lambda_gradcam, loss=loss, adv_weight=adv_weight, output=output,
        beta1=beta1, cam_weight_copies=cam_weight_copies, cam_weight_keep=cam_weight_keep,
        feature_weight=feature_weight, diversity=diversity, epochs=epochs, lr=lr,
        schedule=schedule, width=width, residual_blocks=residual_blocks,
        downsamplings=downsamplings, output_scale=output_scale, smooth_sigma=smooth_sigma)
    config = TrainConfig(data=data, out=str(out), sources=specs,
                         zoo_dir=str(zoo_dir) if zoo_dir else None, eps=eps, norm=norm,
                         kappa=kappa, feature_layer=feature_layer, objectives=objective or [],
                         views=view or [],
                         first_order=first_order, skip_gradient=skip_gradient,
                         cam_normalize=cam_normalize, target_class=target,
                         batch_size=batch_size, seed=seed, train_limit=train_limit,
                         val_limit=val_limit, monitors=monitor or [], device=device,
                         precision=precision,
                         **settings)
    result = train_generator(config, resume=resume, splits=splits)
    typer.echo(f"saved {result.path} (epoch {result.meta['epoch']}); log {log_path(result.path)}")


def register(app: typer.Typer) -> None:
    app.command("train")(train)
