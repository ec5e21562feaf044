"""AEG-GC training throughput: images per second of full training steps on real MNIST.

    python benchmarks/bench_train.py --source runs/zoo/mnist-natural.safetensors \
        --out benchmarks/results/train_throughput.json

A step is the faithful default: generator forward, second-order Grad-CAM of x'
(create_graph=True), CE + hinge + lambda * Grad-CAM loss, backward and an Adam update, with
the clean maps looked up in the trainer's once-per-run cache (the rows marked "recomputed"
compute them in every step instead, as before the cache existed). The `transfer recipe` row
is `agscm train --recipe transfer`'s step: relativistic CE (one more, gradient-free, forward
pass of the source for the clean logits), no Grad-CAM, the blur of delta. `--only` picks rows.
Speed does not depend on the source's weights; without --source a randomly initialised MNIST
CNN is used and the JSON says so.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from agscm.data import load_split
from agscm.models.checkpoint import save_checkpoint
from agscm.models.classifiers import ClassifierConfig, build_classifier
from agscm.models.generator import Generator, GeneratorConfig
from agscm.train.recipes import recipe_settings
from agscm.train.trainer import (
    SourceSpec,
    TrainConfig,
    clean_map_cache,
    load_sources,
    resolve_config,
    step_loss,
)


def random_source(folder: Path) -> Path:
    """A randomly initialised MNIST CNN checkpoint (speed does not depend on weights)."""
    config = ClassifierConfig()
    model = build_classifier(config)
    path = folder / "random-mnist-cnn.safetensors"
    save_checkpoint(path, {f"model.{k}": v for k, v in model.state_dict().items()},
                    {"kind": "classifier", "model": asdict(config), "train": {}, "epoch": 0,
                     "history": []})
    return path


PAPER = recipe_settings("paper")
# label -> (clean maps cached?, TrainConfig fields)
ROWS: dict[str, tuple[bool, dict[str, Any]]] = {
    "second-order (default)": (True, PAPER),
    "second-order, clean maps recomputed": (False, PAPER),
    "first-order": (True, {**PAPER, "first_order": True}),
    "first-order, clean maps recomputed": (False, {**PAPER, "first_order": True}),
    "lambda 0 (no Grad-CAM)": (False, {**PAPER, "lambda_gradcam": 0.0}),
    "transfer recipe": (False, recipe_settings("transfer")),
}


def measure(source: Path, data: str, batch_size: int, steps: int, cached: bool,
            settings: dict[str, Any]) -> float:
    """Images/s of full steps with the TrainConfig fields in `settings` (a recipe, changed)."""
    train = load_split(data, "train").subset(batch_size * (steps + 2))
    config = resolve_config(TrainConfig(data=data, out="unused", sources=[SourceSpec(str(source))],
                                        batch_size=batch_size, **settings), train)
    sources = load_sources(config, train)
    torch.manual_seed(0)
    generator = Generator(GeneratorConfig(channels=1, eps=0.3, width=config.width,
                                          residual_blocks=config.residual_blocks,
                                          output_scale=config.output_scale,
                                          smooth_sigma=config.smooth_sigma))
    optimizer = torch.optim.Adam(generator.parameters(), lr=1e-3)
    images = torch.from_numpy(train.as_float())
    labels = torch.from_numpy(train.labels)
    maps = clean_map_cache(sources, train, config) if cached else None  # once per run: untimed

    def step(index: int) -> None:
        batch = slice(index * batch_size, (index + 1) * batch_size)
        clean = None if maps is None else [m[batch] for m in maps]
        loss, _ = step_loss(generator, sources, images[batch], labels[batch], config, clean)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step(steps)  # warm-up
    start = time.perf_counter()
    for index in range(steps):
        step(index)
    return batch_size * steps / (time.perf_counter() - start)


def measure_cache(source: Path, data: str) -> dict[str, float]:
    """The one-time cost of the clean-map cache on the whole training split."""
    train = load_split(data, "train")
    config = resolve_config(TrainConfig(data=data, out="unused", sources=[SourceSpec(str(source))]),
                            train)
    sources = load_sources(config, train)
    start = time.perf_counter()
    maps = clean_map_cache(sources, train, config)
    seconds = time.perf_counter() - start
    assert maps is not None
    return {"images": len(train), "seconds": round(seconds, 1),
            "mib": round(sum(m.numel() * m.element_size() for m in maps) / 2**20, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", default=None, help="MNIST classifier checkpoint")
    parser.add_argument("--data", default="../shared/data/mnist")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--only", nargs="*", default=None, choices=list(ROWS),
                        help="measure only these rows")
    parser.add_argument("--no-cache-row", action="store_true",
                        help="skip timing the clean-map cache on the whole training split")
    parser.add_argument("--out", default="benchmarks/results/train_throughput.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        source = Path(args.source) if args.source else random_source(Path(folder))
        rows = {}
        for label, (cached, settings) in ROWS.items():
            if args.only and label not in args.only:
                continue
            rate = measure(source, args.data, args.batch_size, args.steps, cached, settings)
            rows[label] = round(rate, 1)
            print(f"{label}: {rate:.0f} images/s (batch {args.batch_size}, "
                  f"{torch.get_num_threads()} threads)")
        cache = None if args.no_cache_row else measure_cache(source, args.data)
        if cache is not None:
            print(f"clean-map cache: {cache['images']} images in {cache['seconds']} s, "
                  f"{cache['mib']} MiB")
    result = {"source": str(args.source or "random-init MNIST CNN"), "batch_size": args.batch_size,
              "steps": args.steps, "torch_threads": torch.get_num_threads(),
              "images_per_second": rows, "clean_map_cache": cache}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
