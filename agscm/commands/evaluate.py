"""`agscm evaluate`, `agscm sweep` and `agscm reproduce mnist`: transfer tables, the lambda sweep and
reproductions of the paper's tables."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated, Any

import typer

from agscm.commands.options import GeneratorPrecision, TorchDevice, resolve_torch_device
from agscm.commands.zoo import ZooDir
from agscm.errors import AgscmError, one_line_errors


def parse_lambdas(text: str) -> list[float]:
    """`0,0.2,0.4` -> [0.0, 0.2, 0.4]."""
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise AgscmError(f"bad lambda list {text!r}; expected numbers separated by commas "
                         "(e.g. 0,0.2,0.4)") from None


@one_line_errors
def evaluate(
    data: Annotated[str, typer.Option(help="Data set: a path or 'mnist-sample'.")],
    source: Annotated[list[str] | None, typer.Option(
        help="Source model (zoo name or checkpoint); repeat for more rows.")] = None,
    target: Annotated[list[str] | None, typer.Option(
        help="Target model; repeat \\[default: the zoo sources].")] = None,
    method: Annotated[list[str] | None, typer.Option(
        help="aeg-gc, ata, pgd, mifgsm, fgsm or noise, with options as NAME:KEY=VALUE,... (e.g. "
             "pgd:steps=20); repeat \\[default: aeg-gc if generators are given, and every "
             "baseline, the noise floor included].")] = None,
    generator: Annotated[list[str] | None, typer.Option(
        help="SOURCE=PATH: an aeg-gc generator (.safetensors or .onnx) for a source, one row "
             "per recipe it was trained with; repeat. An ensemble source a+b is attacked by "
             "the baselines through the mean of its members' logits.")] = None,
    zoo_dir: ZooDir = None,
    split: Annotated[str, typer.Option(
        help="test, val (the held-out training images, for choosing settings), fit or "
             "train.")] = "test",
    limit: Annotated[int | None, typer.Option(help="Use only the first N images.")] = None,
    eps: Annotated[float | None, typer.Option(
        help="L-inf budget for every method \\[default: 0.3 grey, 8/255 colour].")] = None,
    batch_size: Annotated[int, typer.Option(help="Images per crafting batch.")] = 250,
    seed: Annotated[int, typer.Option(help="Seed for random starts.")] = 0,
    cache: Annotated[Path, typer.Option(help="Folder of crafted sets to reuse.")] = Path(
        "runs/cache"),
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Craft everything again and "
                                           "store nothing.")] = False,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for transfer.md, .csv and "
                                      ".json, rewritten as each set is scored (a stopped "
                                      "run leaves the table so far, marked partial).")] = Path("runs/eval"),
    device: TorchDevice = "auto",
) -> None:
    """Transfer table: craft each source x method set once, score it on every target.

    Example: agscm evaluate --data ../shared/data/mnist --zoo runs/zoo --source mnist-adv
    --target mnist-natural --target mnist-secret --generator mnist-adv=g-adv.safetensors
    --method aeg-gc --method ata --method pgd --limit 1000
    """
    from agscm.eval.methods import parse_generator
    from agscm.eval.report import cell_grid, markdown_table, write_transfer
    from agscm.eval.transfer import EvalConfig, TransferResult
    from agscm.eval.transfer import evaluate as run_evaluation

    generators: dict[str, list[str]] = {}
    for text in generator or []:
        label, path = parse_generator(text)
        generators.setdefault(label, []).append(str(path))
    config = EvalConfig(data=data, sources=list(source or []), targets=list(target or []),
                        methods=list(method or []), generators=generators,
                        zoo_dir=str(zoo_dir) if zoo_dir else None, split=split, limit=limit,
                        eps=eps, batch_size=batch_size, seed=seed,
                        cache_dir=None if no_cache else str(cache), device=device)
    written: list[Path] = []

    def write_so_far(so_far: TransferResult) -> None:
        written[:] = write_transfer(so_far, out)

    result = run_evaluation(config, on_set=write_so_far)
    typer.echo(f"target accuracy on adversarial images ({result.images} images, eps "
               f"{result.eps:.4g}; lower = stronger):")
    typer.echo(markdown_table(["source", "method", *result.targets],
                              cell_grid(result, lambda c: c.accuracy, min)))
    typer.echo("wrote " + ", ".join(str(p) for p in written))  # after the last set


@one_line_errors
def sweep(
    data: Annotated[str, typer.Option(help="Data set: a path or 'mnist-sample'.")],
    source: Annotated[str, typer.Option(help="Source model the generators attack.")],
    target: Annotated[str, typer.Option(help="Target model the success rate is measured on.")],
    lambdas: Annotated[str, typer.Option(help="Comma-separated lambdas.")] = "0,0.2,0.4,0.6,0.8",
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Folder for the checkpoints, sweep.md, .json and .png "
                            "\\[default: runs/sweep/<source>-<target>].")] = None,
    zoo_dir: ZooDir = None,
    eps: Annotated[float | None, typer.Option(
        help="Perturbation bound \\[default: 0.3 grey, 8/255 colour].")] = None,
    epochs: Annotated[int, typer.Option(help="Training epochs per lambda.")] = 2,
    train_limit: Annotated[int | None, typer.Option(
        help="Training images per lambda \\[default: all].")] = None,
    val_limit: Annotated[int, typer.Option(help="Validation images per epoch.")] = 1000,
    batch_size: Annotated[int, typer.Option(help="Training batch size.")] = 128,
    width: Annotated[int, typer.Option(help="Generator width.")] = 8,
    residual_blocks: Annotated[int, typer.Option(help="Generator residual blocks.")] = 4,
    seed: Annotated[int, typer.Option(help="Training seed.")] = 0,
    split: Annotated[str, typer.Option(
        help="Split scored: val (held-out training images) or test.")] = "val",
    limit: Annotated[int | None, typer.Option(
        help="Images scored \\[default: all of the split].")] = None,
    eval_batch_size: Annotated[int, typer.Option(help="Images per scoring batch.")] = 250,
    cache: Annotated[Path | None, typer.Option(
        help="Folder to keep crafted sets and predictions in, so a rerun only reads them "
             "back \\[default: none].")] = None,
    device: TorchDevice = "auto",
    precision: GeneratorPrecision = "fp32",
) -> None:
    """Lambda sweep (the paper's Figure 3): one generator per lambda, success on the target.

    Example: agscm sweep --data ../shared/data/mnist --zoo runs/zoo --source mnist-adv
    --target mnist-secret --lambdas 0,0.4,0.8 --epochs 1 --train-limit 10000
    """
    from agscm.eval.report import sweep_table, write_sweep
    from agscm.eval.sweep import SweepConfig, run_sweep

    folder = out or Path("runs") / "sweep" / f"{Path(source).stem}-{Path(target).stem}"
    config = SweepConfig(data=data, source=source, target=target, out=str(folder),
                         lambdas=parse_lambdas(lambdas), zoo_dir=str(zoo_dir) if zoo_dir else None,
                         eps=eps, epochs=epochs, train_limit=train_limit, val_limit=val_limit,
                         batch_size=batch_size, width=width, residual_blocks=residual_blocks,
                         seed=seed, split=split, limit=limit, eval_batch_size=eval_batch_size,
                         device=device, precision=precision,
                         cache_dir=str(cache) if cache else None)
    result = run_sweep(config)
    typer.echo(sweep_table(result))
    typer.echo("wrote " + ", ".join(str(p) for p in write_sweep(result, folder)))


reproduce_app = typer.Typer(help="Reproduce the paper's tables on our own zoo, end to end.\n\n"
                                 "Example: agscm reproduce mnist --quick",
                            no_args_is_help=True)


@one_line_errors
def reproduce(
    ctx: typer.Context,
    quick: Annotated[bool, typer.Option(
        "--quick", help="A tiny budget (about a minute) that runs every stage, in its own "
                        "folders (runs/reproduce/<name>-quick).")] = False,
    data: Annotated[str | None, typer.Option(
        help="Data set path \\[default: the spec's, under ../shared/data].")] = None,
    zoo_dir: Annotated[Path | None, typer.Option(
        "--zoo", help="Zoo folder: trained or resumed there, but a catalogued one (the "
                      "committed zoo/) is measured as it is \\[default: runs/zoo; --quick: "
                      "<work>/zoo].")] = None,
    work: Annotated[Path | None, typer.Option(
        help="Folder for generators and sweep checkpoints \\[default: runs/reproduce/<name>].")
    ] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Folder for <name>.md/.json/.csv/-sweep.png \\[default: "
                            "docs/reproduction; --quick: <work>].")] = None,
    cache: Annotated[Path | None, typer.Option(
        help="Crafted-set cache \\[default: runs/cache; --quick: <work>/cache].")] = None,
    epochs: Annotated[int | None, typer.Option(
        help="Generator epochs of both recipes \\[default: each recipe's].")] = None,
    train_limit: Annotated[int | None, typer.Option(
        help="Generator training images \\[default: all of the fit split].")] = None,
    lambda_gradcam: Annotated[float | None, typer.Option(
        "--lambda", help="Fix the paper recipe's lambda \\[default: the sweep's best > 0].")
    ] = None,
    limit: Annotated[int | None, typer.Option(
        help="Test images in the table \\[default: all].")] = None,
    attack_steps: Annotated[int | None, typer.Option(
        help="Override the steps of every baseline \\[default: each baseline's own].")] = None,
    sweep_lambdas: Annotated[str | None, typer.Option(
        help="Comma-separated sweep lambdas \\[default: 0,0.2,0.4,0.6,0.8].")] = None,
    sweep_epochs: Annotated[int | None, typer.Option(
        help="Epochs per sweep lambda \\[default: 2].")] = None,
    sweep_train_limit: Annotated[int | None, typer.Option(
        help="Training images per sweep lambda \\[default: 20,000].")] = None,
    device: Annotated[str | None, typer.Option(
        help="torch device: auto (CUDA when available, else CPU), cpu, cuda or cuda:N "
             "\\[default: auto].")] = None,
    jobs: Annotated[int | None, typer.Option(
        help="Models trained at once, one process each (zoo, sweep, generators) "
             "\\[default: 1].")] = None,
    precision: Annotated[str | None, typer.Option(
        help="The generators' training steps (sweep and table): fp32, or bf16 (bfloat16 "
             "autocast; 2-3x faster on a CPU with AVX-512 BF16) \\[default: fp32].")] = None,
) -> None:
    from agscm.eval.datasets import SPECS
    from agscm.eval.plan import Budget

    name = ctx.info_name or ""
    from agscm.eval.reproduce import reproduce

    spec = SPECS[name]
    given: dict[str, Any] = {
        "data": data, "zoo_dir": zoo_dir, "out_dir": out, "cache_dir": cache, "epochs": epochs,
        "train_limit": train_limit, "lambda_gradcam": lambda_gradcam, "limit": limit,
        "attack_steps": attack_steps,
        "sweep_lambdas": tuple(parse_lambdas(sweep_lambdas)) if sweep_lambdas else None,
        "sweep_epochs": sweep_epochs, "sweep_train_limit": sweep_train_limit, "device": device,
        "jobs": jobs, "precision": precision}
    changes = {key: str(value) if isinstance(value, Path) else value
               for key, value in given.items() if value is not None}
    changes["device"] = resolve_torch_device(device or "auto")  # the command line keeps `given`
    folder = {"work_dir": str(work)} if work else {}
    budget = (Budget.quick(spec, **folder, **changes) if quick
              else Budget(**changes, **folder))
    result = reproduce(spec, budget, _command(name, quick, work, given))
    for line in result.files:
        typer.echo(f"wrote {line}")


# `agscm reproduce <name>`: one command per data set spec (agscm.eval.datasets.SPECS, which a
# test keeps these names equal to; the specs import torch, which --help must not).
REPRODUCIBLE = {
    "mnist": "The MNIST table (natural, adv and an ensemble x both AEG-GC recipes and the "
             "baselines x every zoo model) and the lambda sweep.",
    "cifar10": "The CIFAR-10 table (natural, adv, secret and an ensemble x both AEG-GC recipes "
               "and the baselines x every zoo model) and the lambda sweep.",
}
for _name, _summary in REPRODUCIBLE.items():
    reproduce_app.command(_name, help=(
        f"{_summary}\n\nEvery stage resumes: rerun the same command after an interruption. "
        f"Writes docs/reproduction/{_name}.md with .json, .csv and {_name}-sweep.png.\n\n"
        f"Example: agscm reproduce {_name} --quick"))(reproduce)


def _command(name: str, quick: bool, work: Path | None, given: dict[str, Any]) -> str:
    """The `agscm reproduce <name>` line as given (options left out keep their defaults)."""
    flags = {"zoo_dir": "--zoo", "out_dir": "--out", "cache_dir": "--cache",
             "lambda_gradcam": "--lambda"}
    parts = ["agscm", "reproduce", name, *(["--quick"] if quick else [])]
    if work:
        parts += ["--work", str(work)]
    for key, value in given.items():
        if value is not None:
            text = ",".join(f"{v:g}" for v in value) if isinstance(value, tuple) else str(value)
            parts += [flags.get(key, "--" + key.replace("_", "-")), text]
    return " ".join(shlex.quote(part) for part in parts)


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)
    app.command("sweep")(sweep)
    app.add_typer(reproduce_app, name="reproduce")
