"""`agscm perturb` and `agscm info`: the torch-free side of the CLI (numpy, onnxruntime, Pillow)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from agscm.errors import AgscmError, one_line_errors
from agscm.progress import print_warning
from agscm.runtime.tiles import DEFAULT_TILE

if TYPE_CHECKING:
    from rich.console import Console

    from agscm.runtime import FolderOptions, FolderSummary
    from agscm.runtime.manifest import FileRecord

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
    model: Annotated[str | None, typer.Option(
        "--model", "-m", help="Generator ONNX file (agscm export) or a shipped generator's name "
                              "(agscm models). Default: the shipped generator that fits IN (see "
                              "above).")] = None,
    device: Device = "auto",
    threads: Threads = None,
    fmt: Annotated[str, typer.Option("--format", help="png (lossless), tiff, bmp, webp or "
                                                      "jpeg (lossy: may break eps).")] = "png",
    quality: Annotated[int, typer.Option(help="JPEG/WebP quality (1-100).")] = 95,
    png_level: Annotated[int, typer.Option(
        help="PNG compression: 1 (fast, the default), 2-9 (many times slower; smaller only where "
             "an image keeps flat areas), 0 (stored: fastest, twice the bytes).")] = 1,
    batch_size: Annotated[int, typer.Option(
        help="At most this many images (or tiles) of one size per model call; a call never "
             f"holds more pixels than one {DEFAULT_TILE}x{DEFAULT_TILE} tile.")] = 256,
    workers: Annotated[int | None, typer.Option(
        help="Worker processes beside this one; each decodes, runs the model and encodes "
             "(default: one per extra core; 0: all in this process).")] = None,
    tile: Annotated[int, typer.Option(
        help="Run images larger than this many pixels a side in overlapping tiles, so memory "
             "stays bounded (0: whole images).")] = DEFAULT_TILE,
    channels: Annotated[str, typer.Option(
        help="convert: turn images into the model's channels, with a warning when colour "
             "becomes grey; strict: refuse images whose colour does not match the model.")
    ] = "convert",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Redo outputs the manifest "
                                                                "records as done.")] = False,
    shard: Annotated[str, typer.Option(help="Take part i of n (0-based), e.g. 0/4.")] = "0/1",
    max_pixels: Annotated[int | None, typer.Option(
        help="Refuse images with more pixels (decompression bombs) (default: 50,000,000).")
    ] = None,
    manifest: Annotated[Path | None, typer.Option(
        help="JSON-lines manifest (default: OUT/manifest.jsonl; never inside IN).")] = None,
    allow_inside_input: Annotated[bool, typer.Option(
        "--allow-inside-input", help="Allow OUT (and the manifest) inside IN, never IN "
                                     "itself.")] = False,
    engine: Annotated[str, typer.Option(
        help="local (processes on this machine) or ray (a Ray cluster, Ray Data's progress; "
             'pip install "agscm[ray]").')] = "local",
    address: Annotated[str | None, typer.Option(
        help="Ray cluster for --engine ray, e.g. auto or 10.0.0.1:6379 (default: "
             "$RAY_ADDRESS, else a local Ray instance for this run).")] = None,
) -> None:
    """Perturb every image under IN into OUT with an exported generator (no PyTorch needed).

    Any size and common format (PNG, JPEG, BMP, WebP, TIFF), converted to the model's
    channels; alpha is not perturbed and is kept in PNG, WebP and TIFF output. OUT/a/b.jpg
    becomes OUT/a/b.jpg.png. Outputs are written atomically and recorded in the JSON-lines
    manifest; a rerun skips what the manifest records as done (resume). Inputs are never
    modified and nothing is written inside IN. The exit code is 1 if any file failed.
    --engine ray spreads the same work over a Ray cluster (IN and OUT on storage every node
    mounts at the same path), with the same outputs, manifest and resume.

    Without --model, a shipped generator is chosen from the images' headers (no pixels decoded,
    the whole tree whatever --shard): if every image is grey (modes 1, L, LA, I, I;16, F, or a
    palette of grey colours), the 1-channel one; if any is colour, the 3-channel one, and grey
    images are converted to RGB. Where several fit, the one whose card says default. A line
    says which and why; with no image or no generator that fits, nothing is written.

    Example: agscm perturb photos/ photos-adv/ --model G.onnx --device auto
    (or with a shipped generator that fits: agscm perturb photos/ photos-adv/)
    """
    from agscm.runtime import FolderOptions
    from agscm.runtime.files import parse_shard
    from agscm.runtime.images import DEFAULT_MAX_PIXELS, admit_pixels
    from agscm.runtime.pretrained import choose_for_folder

    _check_engine(engine, address, workers)
    if channels not in ("convert", "strict"):
        raise AgscmError(f"--channels {channels!r}: choose convert or strict")
    options = FolderOptions(format=fmt, quality=quality, png_level=png_level,
                            batch_size=batch_size, workers=workers, overwrite=overwrite,
                            shard=parse_shard(shard),
                            max_pixels=DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels,
                            manifest=manifest, allow_inside_input=allow_inside_input, tile=tile,
                            strict_channels=channels == "strict")
    options.validate()
    admit_pixels(options.max_pixels)
    if model is None:
        choice = choose_for_folder(source, destination)
        _say(choice.reason)
        model = str(choice.path)
    if engine == "ray":
        _perturb_on_ray(model, source, destination, options, device, threads, address, fmt)
    else:
        _perturb_locally(model, source, destination, options, device, threads, fmt)


def _check_engine(engine: str, address: str | None, workers: int | None) -> None:
    if engine not in ("local", "ray"):
        raise AgscmError(f"--engine {engine!r}: choose local or ray")
    if engine == "local" and address is not None:
        raise AgscmError("--address is for --engine ray")
    if engine == "ray" and workers is not None:
        raise AgscmError("--workers is for --engine local; Ray sizes its actor pool from the "
                         "cluster")


def _perturb_locally(model: str, source: Path, destination: Path, options: FolderOptions,
                     device: str, threads: int | None, fmt: str) -> None:
    """`--engine local`: worker processes on this machine, under one rich progress bar."""
    import os

    from agscm.progress import make_progress
    from agscm.runtime import GeneratorModel
    from agscm.runtime.folder import perturb_folder, processes
    from agscm.runtime.session import THREADS_ENV

    if threads is None and THREADS_ENV not in os.environ and processes(options.workers) > 1:
        threads = 1  # one inference thread per process: the processes fill the cores
    generator = GeneratorModel(model, device=device, threads=threads)
    meta = generator.metadata
    progress = make_progress()
    progress.console.print(f"model {generator.path}: {generator.mode}, eps {meta.eps:.4g} "
                           f"{meta.norm}; provider {generator.provider}", soft_wrap=True)
    task = progress.add_task("perturb", total=None, metrics="")

    def on_record(record: FileRecord) -> None:
        progress.advance(task)
        _report(progress.console, record)

    with progress:
        summary = perturb_folder(generator, source, destination, options,
                                 lambda total: progress.update(task, total=total), on_record,
                                 lambda text: print_warning(progress.console, text))
    _summarise(progress.console, summary, fmt)


def _perturb_on_ray(model: str, source: Path, destination: Path, options: FolderOptions,
                    device: str, threads: int | None, address: str | None, fmt: str) -> None:
    """`--engine ray`: Ray Data shows the progress; failures and the summary as locally."""
    from rich.console import Console

    from agscm.runtime import GeneratorModel
    from agscm.runtime.ray.engine import RayOptions, import_ray, perturb_dataset

    import_ray()  # before any work: without Ray, the one line that says how to install it
    checked = GeneratorModel(model, device="cpu", threads=1)  # the actors open it themselves
    meta = checked.metadata
    console = Console(stderr=True)
    console.print(f"model {checked.path}: {checked.mode}, eps {meta.eps:.4g} {meta.norm}; engine ray "
                  f"({address or 'default address'}), actors on --device {device}",
                  soft_wrap=True)
    summary = perturb_dataset(checked.path, source, destination, options,
                              RayOptions(address, device, threads),
                              on_record=lambda record: _report(console, record),
                              on_warning=lambda text: print_warning(console, text))
    _summarise(console, summary, fmt)


def _say(text: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(text, markup=False, highlight=False, soft_wrap=True)


def _report(console: Console, record: FileRecord) -> None:
    if record.status in ("failed", "ignored"):
        console.print(f"{record.status}: {record.input}: {record.error}", markup=False,
                      highlight=False, soft_wrap=True)


def _summarise(console: Console, summary: FolderSummary, fmt: str) -> None:
    """The run's last lines, the same for every engine; exit 1 when any file failed."""
    counts = ", ".join(f"{count} {status}" for status, count in summary.counts.items())
    quality_text = "" if summary.max_linf is None else (
        f"; max L-inf {summary.max_linf:.4f} ({summary.max_linf * 255:.1f}/255)"
        + ("" if summary.mean_psnr is None else f", mean PSNR {summary.mean_psnr:.1f} dB"))
    console.print(f"{counts} in {summary.seconds:.1f} s ({summary.images_per_second:.0f} "
                  f"images/s){quality_text}; manifest {summary.manifest}", soft_wrap=True)
    for change, files in summary.converted.items():
        print_warning(console, f"{files} file(s) converted: {change}")
    if summary.over_eps:
        print_warning(console, f"{summary.over_eps} saved file(s) exceed eps after {fmt} "
                      "compression")
    if summary.failed:
        console.print(f"{summary.failed} file(s) failed; see the lines above or the manifest",
                      style="red")
        raise typer.Exit(1)


@one_line_errors
def info(
    model: Annotated[str | None, typer.Argument(
        help="Generator ONNX file (agscm export) or a shipped generator's name; none: list the "
             "shipped generators (as agscm models).")] = None,
    device: Device = "auto",
) -> None:
    """Print a generator's metadata, its inputs and outputs, and the available providers.

    Example: agscm info G.onnx
    """
    if model is None:
        from agscm.commands.models import print_shelf

        print_shelf()
        return
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
    table = Table(show_header=False)
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
    # The path goes on a line of its own: a table title wraps to the table's width.
    console.print(f"{generator.path} ({generator.path.stat().st_size / 1e6:.2f} MB)",
                  markup=False, highlight=False, soft_wrap=True)
    console.print(table)
    console.print("config:", json.dumps(rounded(generator.metadata.config), indent=1,
                                        sort_keys=True), markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("perturb")(perturb)
    app.command("info")(info)
