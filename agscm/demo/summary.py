"""What `agscm demo` prints at the end: the table, its reading, the files and the next commands."""

from __future__ import annotations

import shlex

from rich.console import Console
from rich.table import Table

from agscm.demo.pipeline import FLOOR, DemoResult, generator_row, images_per_second
from agscm.formatting import percent, rate


def print_summary(result: DemoResult) -> None:
    """The demo's table, its reading, the files it wrote and what to run next, on stdout."""
    console = Console()
    transfer, paths, zoo = result.transfer, result.paths, result.zoo
    speed = images_per_second(transfer)
    table = Table(title=f"accuracy on the first {transfer.images} test images, attacked at L-inf "
                        f"eps {transfer.eps:.3g} (lower = stronger attack)")
    table.add_column("method")
    for name, role in zoo.columns():  # the data set's tag left out, so 80 columns fit
        table.add_column(f"{name.removeprefix(result.images.dataset + '-')}\n({role})",
                         justify="right")
    table.add_column("crafting\nimages/s", justify="right")
    table.add_row("no attack", *(percent(transfer.clean_accuracy[name])
                                 for name, _ in zoo.columns()), "")
    for method in (FLOOR, *(m for m in transfer.methods if m != FLOOR)):
        cells = [transfer.cell(zoo.natural, method, target) for target, _ in zoo.columns()]
        table.add_row(f"{FLOOR} (floor)" if method == FLOOR else method,
                      *(percent(cell.accuracy) if cell else "-" for cell in cells),
                      rate(speed[method]),
                      end_section=method == FLOOR)
    console.print(table)
    console.print(
        f"Every attack crafted its images against {zoo.natural} alone. White-box: that "
        f"model's own accuracy on them; the other columns are models the attacks never saw: "
        f"{zoo.mlp}, a natural MLP (another architecture), and {zoo.adv}, an adversarially "
        f"trained CNN. {FLOOR} (floor): each pixel moved by +-eps at random, what an attack "
        f"that learned nothing achieves. Crafting images/s: the {transfer.images} images "
        f"divided by the wall seconds of crafting them on {transfer.config.device}, "
        f"{generator_row(transfer)} through the ONNX runtime, measured when each set was crafted.",
        highlight=False)
    console.print("[bold]Reading:[/]", highlight=False)
    for line in result.reading:
        console.print(f"  {line}", highlight=False)
    rows = [(paths.zoo, f"the classifiers (agscm zoo list --zoo {paths.zoo})"),
            (paths.checkpoint, "the generator's PyTorch checkpoint"),
            (paths.onnx, "the generator as ONNX, verified against PyTorch"),
            (paths.samples, f"{result.perturbed} held-out test images (PNG)"),
            (paths.perturbed, f"their adversarial versions, max L-inf {result.max_linf:.4f}, "
                              "with manifest.jsonl"),
            (paths.table("md"), "the table above, with .json and .csv"),
            (paths.figure, "a seeded random sample, fooled or not: clean / adversarial / "
                           "perturbation / Grad-CAM of clean and adversarial")]
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
