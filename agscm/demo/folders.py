"""The demo's image folders: held-out test images as PNG files, perturbed by `agscm perturb`.

The perturbation runs as a subprocess of the real CLI, so the demo proves the path a user
takes (the torch-free runtime reading the exported ONNX file), not an in-process shortcut.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from agscm.atomic import atomic_path
from agscm.data import ImageSet
from agscm.errors import AgscmError

AGSCM = [sys.executable, "-c", "from agscm.cli import main; main()"]  # `agscm` in this venv


@dataclass(frozen=True)
class Sample:
    """One written test image: its file, its label and its index in the test split."""

    path: Path
    label: int
    index: int


def write_samples(data: ImageSet, folder: Path, count: int) -> list[Sample]:
    """The first `count` images of `data` as `folder/<class>/<index>.png` (existing files kept)."""
    samples = []
    for index in range(min(count, len(data))):
        label = int(data.labels[index])
        path = folder / data.classes[label] / f"{index:04d}.png"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = data.images[index].transpose(1, 2, 0)
            with atomic_path(path) as temp:
                Image.fromarray(pixels[..., 0] if data.channels == 1 else pixels).save(
                    temp, format="PNG")
        samples.append(Sample(path, label, index))
    return samples


def run_perturb(source: Path, destination: Path, model: Path) -> str:
    """Run `agscm perturb` in a fresh interpreter; returns the command line it ran."""
    arguments = ["perturb", str(source), str(destination), "--model", str(model)]
    code = subprocess.run([*AGSCM, *arguments]).returncode
    shown = shlex.join(["agscm", *arguments])
    if code != 0:
        raise AgscmError(f"`{shown}` failed with exit code {code}; see its output above")
    return shown


def read_outputs(manifest: Path) -> dict[Path, Path]:
    """Input file -> output file for every image the manifest says is written (ok or exists)."""
    outputs = {}
    try:
        lines = manifest.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise AgscmError(f"{manifest}: cannot read the perturb manifest ({exc.strerror})") from None
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut short by a killed run; the rerun recorded that file again
        if record["status"] in ("ok", "exists") and record["output"]:
            outputs[Path(record["input"]).resolve()] = Path(record["output"])
    return outputs


def read_pixels(path: Path, channels: int) -> np.ndarray:
    """uint8 (C, H, W) of an image file, in the model's channels."""
    with Image.open(path) as image:
        values = np.asarray(image.convert("L" if channels == 1 else "RGB"))
    return values[None] if values.ndim == 2 else values.transpose(2, 0, 1)
