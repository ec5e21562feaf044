"""Write the static site: the page's files, the model, onnxruntime-web, and a manifest.

Every file is written atomically (an exclusive temp file in the same folder, then a rename), so a
killed build leaves old or new files, never half of one. A folder is only written into when it
is new, empty, or a site this command built before (it holds `agscm-site.json`); a rebuild
removes the files the previous build listed and this one does not write.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import IO

from agscm import __version__
from agscm.atomic import write_with
from agscm.contract import (
    INPUT_NAME,
    OUTPUT_NAME,
    REQUIRED_KEYS,
    SUPPORTED_CHANNELS,
    GeneratorMetadata,
)
from agscm.digest import file_digest
from agscm.errors import AgscmError
from agscm.runtime import Perturber
from agscm.web.ort_files import ORT_FILES, ORT_MODULE, ORT_VERSION, locate_ort_dist

MANIFEST = "agscm-site.json"
MODEL_FILE = "model.onnx"
PAGE_FILES = ("app.js", "pixels.js", "png.js", "zip.js", "onnx-metadata.js", "style.css")
NOTICES = "ort/THIRD_PARTY_NOTICES.txt"
CONFIG_MARK = "__AGSCM_SITE__"
# A browser tab holds the image, its float32 copy and the generator's activations in WASM's
# 4 GiB; 16 MP is a 4,000 x 4,000 photo. Larger images belong to `agscm perturb`.
DEFAULT_MAX_PIXELS = 16_000_000


@dataclass(frozen=True)
class SiteReport:
    """What a build wrote: the folder, each file's size, and the model's metadata."""

    folder: Path
    files: dict[str, int]
    metadata: GeneratorMetadata

    @property
    def total_bytes(self) -> int:
        return sum(self.files.values())


def _static(name: str) -> bytes:
    return resources.files("agscm.web").joinpath("static", name).read_bytes()


SERVED = 0o644  # a static server may run as another user: readable by all, whatever the umask


def _previous_files(folder: Path) -> list[str]:
    """The files an earlier build listed; refuses a folder that holds anything else."""
    if folder.exists() and not folder.is_dir():
        raise AgscmError(f"{folder}: exists and is not a folder")
    if not folder.exists() or not any(folder.iterdir()):
        return []
    try:
        listed = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        raise AgscmError(f"{folder}: not empty and not a site built by agscm web (no readable "
                         f"{MANIFEST}); choose a new or empty folder") from None
    return [name for name in listed if isinstance(name, str)]


def _page_config(model: Path, model_bytes: int, model_sha: str, max_pixels: int) -> str:
    config = {
        "agscm_version": __version__,
        "model": {"file": MODEL_FILE, "name": model.name, "bytes": model_bytes,
                  "sha256": model_sha},
        "ort": {"version": ORT_VERSION, "module": f"./ort/{ORT_MODULE}"},
        "contract": {"input": INPUT_NAME, "output": OUTPUT_NAME,
                     "required_keys": list(REQUIRED_KEYS),
                     "channels": {str(k): v for k, v in SUPPORTED_CHANNELS.items()}},
        "max_pixels": max_pixels,
    }
    # Inside <script type="application/json">: "</" must not close the element.
    return json.dumps(config, sort_keys=True).replace("</", "<\\/")


def build_site(folder: str | Path, model: str | Path, ort_dist: str | Path | None = None,
               max_pixels: int = DEFAULT_MAX_PIXELS) -> SiteReport:
    """Build the site for `model` (an `agscm export` ONNX file, or a shipped generator's name)
    into `folder`."""
    folder = Path(folder)
    if max_pixels < 1:
        raise AgscmError(f"max pixels must be >= 1, got {max_pixels}")
    checked = Perturber(model, device="cpu")  # a wrong file fails here, in one line
    metadata, model = checked.metadata, checked.model.path
    dist = locate_ort_dist(Path(ort_dist) if ort_dist is not None else None)
    previous = _previous_files(folder)

    model_sha = file_digest(model)
    model_bytes = model.stat().st_size
    config = _page_config(model, model_bytes, model_sha, max_pixels)
    html = _static("index.html").decode("utf-8").replace(CONFIG_MARK, config)

    writers: dict[str, Callable[[IO[bytes]], None]] = {
        "index.html": lambda out: out.write(html.encode("utf-8")),
        NOTICES: lambda out: out.write(_static("ort-notices.txt")),
    }
    for name in PAGE_FILES:
        writers[name] = lambda out, name=name: out.write(_static(name))
    for name in ORT_FILES:
        writers[f"ort/{name}"] = lambda out, name=name: _copy(dist / name, out)
    writers[MODEL_FILE] = lambda out: _copy(model, out)

    for name, fill in writers.items():
        write_with(folder / name, fill, SERVED)
    for stale in set(previous) - set(writers) - {MANIFEST}:
        target = folder / stale
        if target.resolve().is_relative_to(folder.resolve()) and target.is_file():
            target.unlink()
    files = {name: (folder / name).stat().st_size for name in writers}
    manifest = {"agscm_version": __version__, "onnxruntime_web": ORT_VERSION,
                "model": {"name": model.name, "sha256": model_sha}, "files": sorted(files)}
    write_with(folder / MANIFEST,
               lambda out: out.write((json.dumps(manifest, indent=1) + "\n").encode("utf-8")),
               SERVED)
    return SiteReport(folder, files, metadata)


def _copy(source: Path, out: IO[bytes]) -> None:
    with open(source, "rb") as file:
        shutil.copyfileobj(file, out, 1 << 20)
