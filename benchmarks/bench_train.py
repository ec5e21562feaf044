"""AEG-GC training throughput: images per second of full training steps on real images.

    python benchmarks/bench_train.py --source runs/zoo/mnist-natural.safetensors \
        --out benchmarks/results/train_throughput.json
    python benchmarks/bench_train.py --data ../shared/data/cifar10-jpeg.tar.gz --rows colour \
        --out benchmarks/results/train_throughput_cifar10.json

A step is the faithful default: generator forward, second-order Grad-CAM of x'
(create_graph=True), CE + hinge + lambda * Grad-CAM loss, backward and an Adam update, with
the clean maps looked up in the trainer's once-per-run cache (the rows marked "recomputed"
compute them in every step instead, as before the cache existed). The `transfer recipe` row
is `agscm train --recipe transfer`'s step: relativistic CE (one more, gradient-free, forward
pass of the source for the clean logits), no Grad-CAM, the blur of delta. `--only` picks rows.
Speed does not depend on the source's weights; without --source a randomly initialised
classifier is used (the MNIST CNN, or for colour data the zoo's ResNet-9 at width 40) and the
JSON says so.

`--rows colour` measures CIFAR-10's candidates (issue 28) in one run: today's transfer recipe
(its colour settings), feature separation and Grad-CAM-weighted features at `layer1` with the
source truncated there (no L_adv, so nothing above the layer runs), the same with the
generator's two stride-2 stages (the published generators' shape; the colour recipe runs every
block at full resolution), and these steps and the transfer recipe's in the trainer's bf16
precision (`--precision bf16`: bfloat16 autocast on channels-last tensors), to see what it buys
on this CPU; last, the bf16 Grad-CAM-weighted step with a generator of half the width (16), a
quarter of the generator's arithmetic, since the full-resolution generator costs more than the
truncated source does.
"""

from __future__ import annotations

import argparse
import json
import os
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
from agscm.provenance import cpu_description
from agscm.train.precision import autocast, for_precision
from agscm.train.recipes import recipe_settings
from agscm.train.trainer import (
    SourceSpec,
    TrainConfig,
    channel_weight_cache,
    clean_map_cache,
    load_sources,
    resolve_config,
    step_loss,
)


def random_source(folder: Path, channels: int) -> Path:
    """A randomly initialised classifier checkpoint (speed does not depend on weights): the
    MNIST CNN for grey data, the zoo's CIFAR-10 ResNet-9 (width 40) for colour."""
    config = (ClassifierConfig() if channels == 1 else ClassifierConfig(
        arch="resnet9", channels=3, image_size=(32, 32), mean=[0.5] * 3, std=[0.25] * 3,
        width=40))
    model = build_classifier(config)
    path = folder / f"random-{config.arch}.safetensors"
    save_checkpoint(path, {f"model.{k}": v for k, v in model.state_dict().items()},
                    {"kind": "classifier", "model": asdict(config), "train": {}, "epoch": 0,
                     "history": []})
    return path


PAPER = recipe_settings("paper")
TRANSFER_COLOUR = recipe_settings("transfer", 3)
MID_LAYER = {**TRANSFER_COLOUR, "adv_weight": 0.0, "noise_weight": 0.0, "feature_layer": "layer1",
             "output": "clip"}
WEIGHTED = {**MID_LAYER, "objectives": ["gradcam-feature@1"]}
BF16 = {"precision": "bf16"}
# label -> (clean maps and weights cached?, TrainConfig fields)
COLOUR_ROWS: dict[str, tuple[bool, dict[str, Any]]] = {
    "transfer recipe (colour)": (False, TRANSFER_COLOUR),
    "feature separation at layer1, source truncated": (
        False, {**MID_LAYER, "feature_weight": 1.0}),
    "Grad-CAM-weighted features at layer1, source truncated": (True, WEIGHTED),
    "Grad-CAM-weighted features at layer1, truncated, generator downsampling twice": (
        True, {**WEIGHTED, "downsamplings": 2}),
    "transfer recipe (colour), bf16": (False, {**TRANSFER_COLOUR, **BF16}),
    "Grad-CAM-weighted features at layer1, truncated, bf16": (True, {**WEIGHTED, **BF16}),
    "Grad-CAM-weighted features at layer1, truncated, downsampling twice, bf16": (
        True, {**WEIGHTED, "downsamplings": 2, **BF16}),
    "Grad-CAM-weighted features at layer1, truncated, generator width 16, bf16": (
        True, {**WEIGHTED, "width": 16, **BF16}),
}
GREY_ROWS: dict[str, tuple[bool, dict[str, Any]]] = {
    "second-order (default)": (True, PAPER),
    "second-order, clean maps recomputed": (False, PAPER),
    "first-order": (True, {**PAPER, "first_order": True}),
    "first-order, clean maps recomputed": (False, {**PAPER, "first_order": True}),
    "lambda 0 (no Grad-CAM)": (False, {**PAPER, "lambda_gradcam": 0.0}),
    "transfer recipe": (False, recipe_settings("transfer")),
}
ROWS = {"grey": GREY_ROWS, "colour": COLOUR_ROWS}


def measure(source: Path, data: str, batch_size: int, steps: int, cached: bool,
            settings: dict[str, Any]) -> float:
    """Images/s of full steps with the TrainConfig fields in `settings` (a recipe, changed),
    in the precision they name, set up as the trainer sets it up."""
    train = load_split(data, "train").subset(batch_size * (steps + 2))
    config = resolve_config(TrainConfig(data=data, out="unused", sources=[SourceSpec(str(source))],
                                        batch_size=batch_size, **settings), train)
    sources = load_sources(config, train)
    torch.manual_seed(0)
    assert config.eps is not None
    generator = Generator(GeneratorConfig(
        channels=train.channels, eps=config.eps, width=config.width,
        residual_blocks=config.residual_blocks, downsamplings=config.downsamplings,
        output_scale=config.output_scale, output=config.output, smooth_sigma=config.smooth_sigma))
    images = torch.from_numpy(train.as_float())
    labels = torch.from_numpy(train.labels)
    generator = for_precision(generator, config.precision)
    for source_model in sources:
        for_precision(source_model.model, config.precision)
    optimizer = torch.optim.Adam(generator.parameters(), lr=1e-3)
    # once per run, untimed, as in training
    maps = clean_map_cache(sources, train, config) if cached else None
    weights = channel_weight_cache(sources, train, config) if cached else None

    def step(index: int) -> None:
        batch = slice(index * batch_size, (index + 1) * batch_size)
        with autocast(config.device, config.precision):
            loss, _ = step_loss(generator, sources, images[batch], labels[batch], config,
                                None if maps is None else [m[batch] for m in maps],
                                clean_weights=None if weights is None else [
                                    w[batch] for w in weights])
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
    parser.add_argument("--rows", choices=list(ROWS), default="grey",
                        help="grey: the MNIST rows; colour: CIFAR-10's candidates")
    parser.add_argument("--only", nargs="*", default=None, help="measure only these rows")
    parser.add_argument("--no-cache-row", action="store_true",
                        help="skip timing the clean-map cache on the whole training split")
    parser.add_argument("--out", default="benchmarks/results/train_throughput.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        channels = 3 if args.rows == "colour" else 1
        source = Path(args.source) if args.source else random_source(Path(folder), channels)
        rows = {}
        for label, (cached, settings) in ROWS[args.rows].items():
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
    result = {"source": str(args.source or f"random-init {source.stem.removeprefix('random-')}"),
              "cpu": cpu_description(), "data": args.data, "batch_size": args.batch_size,
              "load_average_1min_at_end": round(os.getloadavg()[0], 2),
              "steps": args.steps, "torch_threads": torch.get_num_threads(),
              "images_per_second": rows, "clean_map_cache": cache}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
