"""`agscm export`: a generator checkpoint -> a verified ONNX file (+ fp16/int8 variants)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from agscm.errors import one_line_errors

if TYPE_CHECKING:
    from agscm.export.pipeline import ExportReport


@one_line_errors
def export(
    checkpoint: Annotated[Path, typer.Argument(help="Generator checkpoint (.safetensors) "
                                                    "written by agscm train.")],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="ONNX file to write (default: CHECKPOINT with .onnx).")] = None,
    data: Annotated[str | None, typer.Option(
        help="Data set for the checks (default: the one the generator was trained on).")] = None,
    zoo_dir: Annotated[Path | None, typer.Option(
        "--zoo", help="Zoo folder holding the source model (default: $AGSCM_ZOO, else the "
                      "checkout's committed zoo/, else ~/.cache/agscm/zoo).")] = None,
    fp16: Annotated[bool, typer.Option("--fp16", help="Also write G.fp16.onnx.")] = False,
    int8: Annotated[bool, typer.Option(
        "--int8", help="Also write G.int8.onnx (static, calibrated on real images).")] = False,
    eval_images: Annotated[int, typer.Option(
        help="Test images for the variants' error and accuracy.")] = 500,
) -> None:
    """Export a generator to ONNX and verify onnxruntime against PyTorch on real images.

    Example: agscm export runs/mnist-gen.safetensors -o G.onnx --fp16 --int8
    """
    from agscm.export.pipeline import export_checkpoint

    report = export_checkpoint(checkpoint, output or checkpoint.with_suffix(".onnx"), data=data,
                               zoo_dir=zoo_dir, fp16=fp16, int8=int8, eval_images=eval_images)
    _print_report(report)


def _print_report(report: ExportReport) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from agscm.export.verify import TOLERANCE

    meta = report.metadata
    console = Console()
    console.print(f"[bold]generator[/] {meta.channels} channel(s), eps {meta.eps:.4g} {meta.norm}, "
                  f"trained at {meta.train_size[0]}x{meta.train_size[1]} on {meta.dataset}, "
                  f"sources {', '.join(meta.source_models) or '-'}, lambda {meta.lambda_gradcam:g}")
    checks = ", ".join(f"{'x'.join(map(str, c.shape))} {c.max_diff:.1e}" for c in report.parity)
    console.print(f"[bold]parity[/] onnxruntime vs PyTorch on {report.data} (limit "
                  f"{TOLERANCE:g}): {checks}")
    folder = report.variants[0].path.parent
    table = Table(title=f"written to {folder}" + (
        f"\nsource {report.source} on {report.eval_images} test images: clean accuracy "
        f"{report.clean_accuracy:.2%}; errors are |variant - fp32| of the images" if report.source
        else ""), box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1))
    for column in ("file", "MB", "build s", "ms/img", "max err", "mean err", "src acc", "Δ pp"):
        table.add_column(column, justify="left" if column == "file" else "right", no_wrap=True)
    fp32_acc = report.variants[0].source_accuracy
    for row in report.variants:
        change = (None if row.source_accuracy is None or fp32_acc is None
                  or row is report.variants[0] else 100 * (row.source_accuracy - fp32_acc))
        table.add_row(row.path.name, f"{row.size_bytes / 1e6:.2f}", f"{row.build_seconds:.1f}",
                      _fmt(row.ms_per_image, ".3f"), _fmt(row.max_error, ".1e"),
                      _fmt(row.mean_error, ".1e"), _fmt(row.source_accuracy, ".2%"),
                      _fmt(change, "+.2f"))
    console.print(table)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else f"{value:{spec}}"


def register(app: typer.Typer) -> None:
    app.command("export")(export)
