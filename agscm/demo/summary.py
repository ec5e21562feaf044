"""What `agscm demo` prints at the end: the table, its reading, the files and the next commands."""

from __future__ import annotations

import shlex

from rich.console import Console
from rich.table import Table

from agscm.demo.pipeline import ATTACKS, FLOOR, DemoResult
from agscm.formatting import percent


def print_summary(result: DemoResult) -> None:
    """The demo's table, its reading, the files it wrote and what to run next, on stdout."""
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
