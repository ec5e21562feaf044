"""`agscm zoo train|list`: the source and target classifiers."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agscm.commands.options import TorchDevice, ZooPrecision
from agscm.errors import one_line_errors

if TYPE_CHECKING:
    from rich.table import Table

zoo_app = typer.Typer(help="Train and list the classifier zoo (natural, adv, secret).\n\n"
                           "Example: agscm zoo train ../shared/data/mnist --kind natural --zoo "
                           "runs/zoo",
                      no_args_is_help=True)

ZooDir = Annotated[Path | None, typer.Option(
    "--zoo", help="Zoo folder \\[default: $AGSCM_ZOO, else the checkout's committed zoo/, "
                  "else ~/.cache/agscm/zoo].")]


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
        help="pgd (Madry's PGD training) or fgsm-rs (single step: faster, but it collapsed on "
             "MNIST at eps 0.3, see docs/RESULTS.md; each epoch's PGD-10 accuracy shows it).")
    ] = "pgd",
    adv_steps: Annotated[int, typer.Option(help="PGD steps (with --adv-method pgd).")] = 7,
    adv_step_size: Annotated[float | None, typer.Option(
        help="Attack step in pixels of [0,1] \\[default: 2.5 eps / steps for pgd, 1.25 eps for "
             "fgsm-rs].")] = None,
    eps_warmup_epochs: Annotated[int, typer.Option(help="Epochs to ramp eps up.")] = 1,
    seed: Annotated[int | None, typer.Option(
        help="Seed \\[default: 0 natural, 1 adv, 2 secret].")] = None,
    train_limit: Annotated[int | None, typer.Option(
        help="Use only the first N training images.")] = None,
    test_limit: Annotated[int | None, typer.Option(
        help="Check each epoch on only the first N test images \\[default: all]; `agscm zoo "
             "publish` measures the whole test set.")] = None,
    stop_after_epoch: Annotated[int | None, typer.Option(
        help="End this run after epoch K of --epochs (the schedule still spans --epochs); the "
             "same command without it goes on from there, ending as one run would.")] = None,
    device: TorchDevice = "auto",
    precision: ZooPrecision = None,
) -> None:
    """Train (or resume) one zoo model.

    Example: agscm zoo train ../shared/data/mnist --kind adv --adv-steps 7 --zoo runs/zoo
    """
    from agscm.data.registry import dataset_tag
    from agscm.models.registry import SUFFIX, default_zoo_dir
    from agscm.train.zoo import ZooConfig, train_classifier

    config = ZooConfig(data=data, kind=kind, arch=arch, width=width, epochs=epochs,
                       batch_size=batch_size, optimizer=optimizer, lr=lr,
                       warmup_epochs=warmup_epochs, weight_decay=weight_decay, augment=augment,
                       eps=eps, adv_method=adv_method, adv_steps=adv_steps,
                       adv_step_size=adv_step_size, eps_warmup_epochs=eps_warmup_epochs,
                       seed=seed, train_limit=train_limit)
    model_name = name or "-".join(filter(None, (dataset_tag(data), arch, kind)))
    path = train_classifier(config, (zoo_dir or default_zoo_dir()) / f"{model_name}{SUFFIX}",
                            device=device, test_limit=test_limit,
                            stop_after_epoch=stop_after_epoch, precision=precision)
    typer.echo(f"saved {path}")


@zoo_app.command("list")
@one_line_errors
def list_(zoo_dir: ZooDir = None) -> None:
    """List the models in the zoo folder.

    Names are printed whole (they are what --source takes); on a narrow terminal the other
    columns wrap, and the last ones are left out when even that does not fit.

    Example: agscm zoo list --zoo runs/zoo
    """
    from rich.console import Console

    from agscm.models.registry import default_zoo_dir, list_models

    folder = zoo_dir or default_zoo_dir()
    rows = list_models(folder)
    if not rows:
        typer.echo(f"no models in {folder}; make one with: agscm zoo train DATA --zoo {folder}")
        return
    console = Console()
    catalogued = rows[0]["status"] == "catalogued"
    columns = CATALOG_COLUMNS if catalogued else ZOO_COLUMNS
    caption = (f"clean, noise, PGD: accuracy on {rows[0]['images']:,} test images; PGD: "
               f"{', '.join(dict.fromkeys(row['attack'] for row in rows))}; agscm zoo show NAME "
               "for the training command" if catalogued
               else "accuracy: clean test accuracy after the last epoch")
    console.print(_zoo_table(folder, rows, console.width, columns, caption))


@zoo_app.command("publish")
@one_line_errors
def publish(
    checkpoint: Annotated[Path, typer.Argument(help="A finished zoo checkpoint (agscm zoo "
                                                    "train).")],
    zoo_dir: Annotated[Path, typer.Option("--zoo", help="The catalogued zoo to add it to.")],
    precision: Annotated[str, typer.Option(help="float16 (half the bytes) or float32.")
                         ] = "float16",
    data: Annotated[str | None, typer.Option(
        help="Data set to measure on \\[default: the one it was trained on].")] = None,
    commit: Annotated[str | None, typer.Option(
        help="The commit that trained it \\[default: recorded per epoch, else this "
             "checkout's].")] = None,
    replace_reason: Annotated[str | None, typer.Option(
        help="Why a model already in the catalog is replaced (kept in its entry).")] = None,
    limit: Annotated[int | None, typer.Option(
        help="Measure on the first N test images only (the entry says how many).")] = None,
    device: TorchDevice = "auto",
) -> None:
    """Add a finished zoo model to a catalogued zoo, measured as stored.

    Weights only (half precision by default), measured on the whole test set as stored
    (clean, random noise, the data set's PGD), with its size, sha256, training command and
    commit in the catalog.

    Example: agscm zoo publish runs/zoo/mnist-natural.safetensors --zoo zoo
    """
    from agscm.eval.publish import publish_model
    from agscm.formatting import percent

    entry = publish_model(checkpoint, zoo_dir, precision=precision, data=data, commit=commit,
                          replace_reason=replace_reason, limit=limit, device=device)
    test = entry["test"]
    typer.echo(f"{zoo_dir / entry['file']}: clean {percent(test['clean_acc'])}, noise "
               f"{percent(test['noise_acc'])}, {test['attack']} {percent(test['attack_acc'])} on "
               f"{test['images']:,} test images; {entry['size_bytes'] / 1e6:.1f} MB, sha256 "
               f"{entry['sha256'][:16]}...")


@zoo_app.command("show")
@one_line_errors
def show(name: Annotated[str, typer.Argument(help="A model of the catalogued zoo.")],
         zoo_dir: ZooDir = None) -> None:
    """Print one catalog entry in full (file checked against its sha256 first).

    Example: agscm zoo show mnist-natural --zoo zoo
    """
    import json

    from agscm.models.catalog import catalog_entry
    from agscm.models.registry import default_zoo_dir

    typer.echo(json.dumps(catalog_entry(zoo_dir or default_zoo_dir(), name), indent=2))


# (header, row key), given up from the end when the terminal is too narrow; the last one wraps
ZOO_COLUMNS = (("name", "name"), ("kind", "zoo_kind"), ("accuracy", "test_acc"),
               ("epochs", "epochs"), ("status", "status"), ("arch", "arch"), ("data", "data"))
CATALOG_COLUMNS = (("name", "name"), ("kind", "zoo_kind"), ("clean", "test_acc"),
                   ("noise", "noise_acc"), ("PGD", "attack_acc"), ("arch", "arch"),
                   ("data", "data"), ("epochs", "epochs"), ("MB", "size_mb"),
                   ("sha256", "sha256"), ("commit", "commit"))
PERCENT_KEYS = ("test_acc", "noise_acc", "attack_acc")
FOLDED_MIN = 12  # the narrowest the wrapped last column gets


def _zoo_table(folder: Path, rows: list[dict[str, Any]], width: int,
               columns: tuple[tuple[str, str], ...], caption: str) -> Table:
    """The most of `columns` that fit `width` with every name whole."""
    from rich.table import Table

    from agscm.formatting import percent

    def cell(row: dict[str, Any], key: str) -> str:
        value = row.get(key)
        if key in PERCENT_KEYS:
            return percent(value) if isinstance(value, float) else ""
        if key == "size_mb":
            return f"{value:.1f}"
        if key in ("sha256", "commit"):
            return str(value)[:12]
        return "" if value is None else str(value)

    cells = [[cell(row, key) for _, key in columns] for row in rows]
    widths = [max(len(header), *(len(row[i]) for row in cells))
              for i, (header, _) in enumerate(columns)]
    widths[-1] = min(widths[-1], max(FOLDED_MIN, len(columns[-1][0])))
    count = len(columns)
    while count > 1 and sum(widths[:count]) + 3 * count + 1 > width:  # borders and padding
        count -= 1
    table = Table(title=f"zoo: {folder}", title_justify="left",
                  caption=caption if count > 2 else None, caption_justify="left")
    for index, (header, _) in enumerate(columns[:count]):
        folds = index == len(columns) - 1
        table.add_column(header, min_width=widths[index], no_wrap=not folds, overflow="fold")
    for row in cells:
        table.add_row(*row[:count])
    return table


def register(app: typer.Typer) -> None:
    app.add_typer(zoo_app, name="zoo")
