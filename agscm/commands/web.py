"""`agscm web`: build the static site that perturbs images in the browser (torch-free)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agscm.errors import one_line_errors


@one_line_errors
def web(
    out_dir: Annotated[Path, typer.Argument(
        metavar="OUT_DIR", help="Folder for the site: new, empty, or built here before.")],
    model: Annotated[str, typer.Option(
        "--model", "-m", help="Generator ONNX file (agscm export) or a shipped generator's name "
                              "(agscm models).")],
    ort_dist: Annotated[Path | None, typer.Option(
        help="onnxruntime-web's dist/ folder (default: $AGSCM_ORT_WEB, else the checkout's "
             "web/node_modules from `npm ci --prefix web`).")] = None,
    max_pixels: Annotated[int | None, typer.Option(
        help="Largest image the page accepts, in pixels (default: 16,000,000).")] = None,
) -> None:
    """Write a static site that runs the generator in the browser, on this device only.

    The page shows the model's metadata, takes images by file picker or drag and drop, and
    offers the adversarial PNGs, one by one or as a zip; it uses WebGPU where the browser has it,
    else WASM. Serve the folder with any static server; images never leave the browser.

    Example: agscm web site/ --model G.onnx && python -m http.server -d site -b 127.0.0.1 8000
    """
    from rich.console import Console

    from agscm.web import build_site
    from agscm.web.site import DEFAULT_MAX_PIXELS

    report = build_site(out_dir, model, ort_dist, max_pixels or DEFAULT_MAX_PIXELS)
    meta = report.metadata
    console = Console(highlight=False)
    console.print(f"model {model}: {meta.channels} channel(s), eps {meta.eps:.4g} {meta.norm}, "
                  f"{meta.dataset}", markup=False, soft_wrap=True)
    console.print(f"wrote {len(report.files)} files ({report.total_bytes / 1e6:.1f} MB) to "
                  f"{report.folder}", markup=False, soft_wrap=True)
    console.print(f"serve it: python -m http.server --directory {report.folder} --bind 127.0.0.1 "
                  "8000, then open http://127.0.0.1:8000/", markup=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("web")(web)
