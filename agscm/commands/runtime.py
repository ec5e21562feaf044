"""`agscm perturb` and `agscm info`: the torch-free side of the CLI (numpy, onnxruntime, Pillow)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agscm.errors import one_line_errors

Device = Annotated[str, typer.Option(help="auto (CUDA when available, else CPU), cpu, or cuda "
                                          "(fails when CUDA is not usable).")]
Threads = Annotated[int | None, typer.Option(
    help="onnxruntime intra-op threads (default: $AGSCM_THREADS, else one per core).")]


@one_line_errors
def perturb(
    source: Annotated[Path, typer.Argument(
        metavar="IN", help="Input folder (read recursively, never written).")],
    destination: Annotated[Path, typer.Argument(
        metavar="OUT", help="Output folder; mirrors the input tree.")],
    model: Annotated[Path, typer.Option("--model", "-m", help="Generator ONNX file "
                                                              "(agscm export).")],
    device: Device = "auto",
    threads: Threads = None,
    fmt: Annotated[str, typer.Option("--format", help="png (lossless), tiff, bmp, webp or "
                                                      "jpeg.")] = "png",
    quality: Annotated[int, typer.Option(help="JPEG/WebP quality (1-100).")] = 95,
    batch_size: Annotated[int, typer.Option(help="Images of one size per model call.")] = 64,
    workers: Annotated[int | None, typer.Option(
        help="Decode/encode threads (default: one per core, at least 2).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Redo outputs that exist "
                                                                "(default: skip them).")] = False,
    shard: Annotated[str, typer.Option(help="Take part i of n (0-based), e.g. 0/4.")] = "0/1",
    max_pixels: Annotated[int | None, typer.Option(
        help="Refuse images with more pixels (decompression bombs) (default: 50,000,000).")
    ] = None,
    manifest: Annotated[Path | None, typer.Option(
        help="JSON-lines manifest (default: OUT/manifest.jsonl).")] = None,
    allow_inside_input: Annotated[bool, typer.Option(
        "--allow-inside-input", help="Allow OUT to be IN or inside it.")] = False,
) -> None:
    """Perturb every image under IN into OUT with an exported generator (no PyTorch needed).

    Any size and common format (PNG, JPEG, BMP, WebP, TIFF), converted to the model's
    channels; alpha is not perturbed and is kept in PNG, WebP and TIFF output. Outputs are
    written atomically, existing ones are skipped (resume), and every file gets a line in
    the JSON-lines manifest; the exit code is 1 if any file failed.

    Example: agscm perturb photos/ photos-adv/ --model G.onnx --device auto
    """
    import warnings

    from PIL import Image

    from agscm.progress import make_progress
    from agscm.runtime import FolderOptions, GeneratorModel
    from agscm.runtime.files import parse_shard
    from agscm.runtime.folder import FileRecord, perturb_folder
    from agscm.runtime.images import DEFAULT_MAX_PIXELS

    options = FolderOptions(format=fmt, quality=quality, batch_size=batch_size, workers=workers,
                            overwrite=overwrite, shard=parse_shard(shard),
                            max_pixels=max_pixels or DEFAULT_MAX_PIXELS, manifest=manifest,
                            allow_inside_input=allow_inside_input)
    options.validate()
    # The runtime refuses oversized headers itself (--max-pixels): Pillow's own warning is noise,
    # and its hard limit (twice its warning size) is raised only when asked for more.
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
    if options.max_pixels > (Image.MAX_IMAGE_PIXELS or 0):
        Image.MAX_IMAGE_PIXELS = options.max_pixels
    generator = GeneratorModel(model, device=device, threads=threads)
    meta = generator.metadata
    progress = make_progress()
    progress.console.print(f"model {model}: {generator.mode}, eps {meta.eps:.4g} {meta.norm}; "
                           f"provider {generator.provider}", soft_wrap=True)
    task = progress.add_task("perturb", total=None, metrics="")

    def on_record(record: FileRecord) -> None:
        progress.advance(task)
        if record.status in ("failed", "ignored"):
            progress.console.print(f"{record.status}: {record.input}: {record.error}",
                                   markup=False, highlight=False, soft_wrap=True)

    with progress:
        summary = perturb_folder(generator, source, destination, options,
                                 lambda total: progress.update(task, total=total), on_record)
    counts = ", ".join(f"{count} {status}" for status, count in summary.counts.items())
    quality_text = "" if summary.max_linf is None else (
        f"; max L-inf {summary.max_linf:.4f} ({summary.max_linf * 255:.1f}/255)"
        + ("" if summary.mean_psnr is None else f", mean PSNR {summary.mean_psnr:.1f} dB"))
    progress.console.print(f"{counts} in {summary.seconds:.1f} s ({summary.images_per_second:.0f} "
                           f"images/s){quality_text}; manifest {summary.manifest}",
                           soft_wrap=True)
    if summary.failed:
        progress.console.print(f"{summary.failed} file(s) failed; see the lines above or the "
                               "manifest", style="red")
        raise typer.Exit(1)


@one_line_errors
def info(
    model: Annotated[Path, typer.Argument(help="Generator ONNX file (agscm export).")],
    device: Device = "auto",
) -> None:
    """Print a generator's metadata, its inputs and outputs, and the available providers.

    Example: agscm info G.onnx
    """
    import json

    import onnxruntime
    from rich.console import Console
    from rich.table import Table

    from agscm.formatting import rounded
    from agscm.runtime import GeneratorModel

    def readable(value: str) -> str:  # numbers in a metadata string, rounded for people
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        return value if isinstance(parsed, str) else json.dumps(rounded(parsed))

    generator = GeneratorModel(model, device=device)
    console = Console()
    table = Table(title=f"{model} ({model.stat().st_size / 1e6:.2f} MB)", show_header=False)
    props = generator.session.get_modelmeta().custom_metadata_map
    for key, value in sorted(props.items()):
        if key != "config":
            table.add_row(key, readable(value))
    for kind, values in (("input", generator.session.get_inputs()),
                         ("output", generator.session.get_outputs())):
        for value in values:
            table.add_row(kind, f"{value.name}: {value.type} {value.shape}")
    table.add_row("providers", f"{', '.join(onnxruntime.get_available_providers())} "
                               f"(session: {generator.provider})")
    console.print(table)
    console.print("config:", json.dumps(rounded(generator.metadata.config), indent=1,
                                        sort_keys=True), markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("perturb")(perturb)
    app.command("info")(info)
