"""Helpers for the export/runtime tests: tiny real generators, image folders, subprocess runs.

`build_mnist_generator` (behind the `mnist_generator` fixture in conftest.py) trains a width-4
generator for a few dozen Adam steps against the `tiny-natural` zoo model (plain
cross-entropy), then exports it with `agscm export`'s own pipeline.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class GeneratorFiles:
    checkpoint: Path
    zoo: Path
    onnx: Path


SOURCE = "tiny-natural"


def build_mnist_generator(folder: Path, mnist_dir: Path, zoo: Path,
                          steps: int = 60) -> GeneratorFiles:
    """Train a tiny generator against the zoo's `tiny-natural` on real MNIST; export it."""
    import torch

    from agscm.data import load_split
    from agscm.export.pipeline import export_checkpoint
    from agscm.models.generator import Generator, GeneratorConfig
    from agscm.models.generator_checkpoint import save_generator
    from agscm.models.registry import load_classifier

    files = GeneratorFiles(folder / "gen.safetensors", zoo, folder / "G.onnx")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a shared 2-core box: one thread is the fastest for tiny models
    try:
        source, _ = load_classifier(SOURCE, zoo)
        train = load_split(mnist_dir, "train").subset(2000)
        torch.manual_seed(0)
        generator = Generator(GeneratorConfig(channels=1, width=4, residual_blocks=1, eps=0.3))
        optimizer = torch.optim.Adam(generator.parameters(), lr=1e-2)
        for step in range(steps):
            index = np.arange(step * 64, (step + 1) * 64) % len(train)
            images = torch.from_numpy(train.images[index]).float() / 255
            labels = torch.from_numpy(train.labels[index])
            loss = -torch.nn.functional.cross_entropy(source(generator(images)), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        save_generator(files.checkpoint, generator.eval(), {
            "dataset": "mnist", "image_size": [28, 28], "sources": [SOURCE],
            "lambda": 0.5, "train": {"data": str(mnist_dir), "steps": steps}})
        export_checkpoint(files.checkpoint, files.onnx)
    finally:
        torch.set_num_threads(threads)
    return files


def export_random_generator(path: Path, channels: int, norm: str = "linf",
                            eps: float = 8 / 255, downsamplings: int = 2) -> Path:
    """An untrained generator exported straight to ONNX (no data needed): for runtime tests
    that need other channel counts, norms or architectures, where what it learned does not
    matter."""
    import onnx
    import torch

    from agscm import __version__
    from agscm.contract import SIZE_MULTIPLE, GeneratorMetadata
    from agscm.export.onnx_export import export_generator
    from agscm.models.generator import Generator, GeneratorConfig

    torch.manual_seed(channels)
    config = GeneratorConfig(channels=channels, width=4, residual_blocks=1, eps=eps, norm=norm,
                             downsamplings=downsamplings)
    metadata = GeneratorMetadata(__version__, channels, eps, norm, (32, 32), SIZE_MULTIPLE,
                                 "random", [], 0.0, {"generator": asdict(config)})
    sample = np.random.default_rng(0).random((2, channels, 32, 32), dtype=np.float32)
    onnx.save(export_generator(Generator(config).eval(), metadata, sample), path)
    return path


def mnist_pngs(folder: Path, mnist_dir: Path, count: int, start: int = 0) -> list[Path]:
    """Write `count` real MNIST test digits as PNG files into `folder`."""
    from agscm.data import load_split

    folder.mkdir(parents=True, exist_ok=True)
    images = load_split(mnist_dir, "test").images[start:start + count, 0]
    paths = []
    for index, image in enumerate(images, start):
        paths.append(folder / f"{index:05d}.png")
        Image.fromarray(image).save(paths[-1])
    return paths


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under `root` (relative path -> content), for before/after comparisons."""
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def run_agscm(*args: str, env: dict[str, str] | None = None,
              **kwargs: object) -> subprocess.CompletedProcess[str]:
    """`agscm ARGS` in a fresh interpreter (what a user runs), output captured as text."""
    return subprocess.run([sys.executable, "-c", "from agscm.cli import main; main()", *args],
                          capture_output=True, text=True, cwd=REPO, timeout=120,
                          env={**os.environ, "AGSCM_THREADS": "1", **(env or {})},
                          **kwargs)  # type: ignore[call-overload]

