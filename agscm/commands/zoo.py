"""`agscm zoo train|list`: the source and target classifiers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agscm.errors import one_line_errors

zoo_app = typer.Typer(help="Train and list the classifier zoo (natural, adv, secret).",
                      no_args_is_help=True)

ZooDir = Annotated[Path | None, typer.Option(
    "--zoo", help="Zoo folder \\[default: $AGSCM_ZOO or ~/.cache/agscm/zoo].")]


@zoo_app.command("train")
@one_line_errors
def train(
    data: Annotated[str, typer.Argument(help="Data set: a path (IDX folder, CIFAR batches, "
                                             "image folder, .tar.gz) or 'mnist-sample'.")],
    kind: Annotated[str, typer.Option(help="natural, adv or secret.")] = "natural",
    arch: Annotated[str | None, typer.Option(
        help="Architecture: madry-cnn, resnet-small, resnet9, vgg-small, mobilenet-small or mlp "
             "\\[default: madry-cnn grey, resnet-small colour].")] = None,
    width: Annotated[int | None, typer.Option(
        help="Base width \\[default: the architecture's own].")] = None,
    name: Annotated[str | None, typer.Option(
        help="Model name \\[default: <data name>-<kind>, or <data name>-<arch>-<kind> with "
             "--arch].")] = None,
    zoo_dir: ZooDir = None,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 4,
    batch_size: Annotated[int, typer.Option(help="Batch size.")] = 128,
    optimizer: Annotated[str, typer.Option(help="adam or sgd (Nesterov momentum 0.9).")] = "adam",
    lr: Annotated[float, typer.Option(
        help="Peak learning rate (warm-up, then cosine decay).")] = 1e-3,
    warmup_epochs: Annotated[float, typer.Option(help="Learning-rate warm-up epochs.")] = 0.0,
    weight_decay: Annotated[float, typer.Option(help="Weight decay.")] = 0.0,
    augment: Annotated[str, typer.Option(
        help="Augmentation: none, noise (uniform noise of the eps budget on half the images), "
             "shift (random translation) or shift-flip.")] = "none",
    eps: Annotated[float | None, typer.Option(
        help="Adversarial training budget \\[default: 0.3 grey, 8/255 colour].")] = None,
    adv_method: Annotated[str, typer.Option(
        help="pgd, or fgsm-rs (fast, but can collapse; see docs/RESULTS.md).")] = "pgd",
    adv_steps: Annotated[int, typer.Option(help="PGD steps (with --adv-method pgd).")] = 7,
    eps_warmup_epochs: Annotated[int, typer.Option(help="Epochs to ramp eps up.")] = 1,
    seed: Annotated[int | None, typer.Option(
        help="Seed \\[default: 0 natural, 1 adv, 2 secret].")] = None,
    train_limit: Annotated[int | None, typer.Option(
        help="Use only the first N training images.")] = None,
    device: Annotated[str, typer.Option(help="torch device: cpu or cuda.")] = "cpu",
) -> None:
    """Train (or resume) one zoo model.

    Example: agscm zoo train ../shared/data/mnist --kind adv --epochs 5 --zoo runs/zoo
    """
    from agscm.data.registry import dataset_tag
    from agscm.models.registry import SUFFIX, default_zoo_dir
    from agscm.train.zoo import ZooConfig, train_classifier

    config = ZooConfig(data=data, kind=kind, arch=arch, width=width, epochs=epochs,
                       batch_size=batch_size, optimizer=optimizer, lr=lr,
                       warmup_epochs=warmup_epochs, weight_decay=weight_decay, augment=augment,
                       eps=eps, adv_method=adv_method, adv_steps=adv_steps,
                       eps_warmup_epochs=eps_warmup_epochs, seed=seed, train_limit=train_limit)
    model_name = name or "-".join(filter(None, (dataset_tag(data), arch, kind)))
    path = train_classifier(config, (zoo_dir or default_zoo_dir()) / f"{model_name}{SUFFIX}",
                            device=device)
    typer.echo(f"saved {path}")


@zoo_app.command("list")
@one_line_errors
def list_(zoo_dir: ZooDir = None) -> None:
    """List the models in the zoo folder.

    Example: agscm zoo list --zoo runs/zoo
    """
    from rich.console import Console
    from rich.table import Table

    from agscm.models.registry import default_zoo_dir, list_models

    folder = zoo_dir or default_zoo_dir()
    rows = list_models(folder)
    if not rows:
        typer.echo(f"no models in {folder}")
        return
    table = Table(title=f"zoo: {folder}")
    for column in ("name", "zoo_kind", "arch", "data", "epochs", "test_acc", "status"):
        table.add_column(column)
    for row in rows:
        acc = row.get("test_acc")
        table.add_row(*(str(row.get(c, "")) for c in ("name", "zoo_kind", "arch", "data", "epochs")),
                      f"{acc:.2%}" if isinstance(acc, float) else "", row["status"])
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(zoo_app, name="zoo")
