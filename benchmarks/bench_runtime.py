"""Runtime benchmark: onnxruntime vs PyTorch eager, folder throughput, crafting speed, memory.

    python benchmarks/bench_runtime.py [--checkpoint runs/mnist-gen.safetensors --zoo runs/zoo]
        [--out benchmarks/results/runtime.json]

On `--threads` cores (default 2) it measures, for the same generator:
1. inference: onnxruntime (the runtime's session options) vs torch eager, same threads and batch;
2. end to end: `agscm perturb` folder -> folder in a child process, images/s for the CIFAR-10
   test JPEGs (32x32, unpacked to a temp folder outside the repo) and MNIST test digits
   written as PNG, with the child's peak RSS (RUSAGE_CHILDREN of a small launcher); the
   fp32 runs are repeated with the output folder on tmpfs (/dev/shm) where there is one,
   which separates the pipeline's speed from the disk's cost of creating files;
3. crafting: the generator vs PGD-10 and ATA (10 steps) on the same MNIST test images,
   source model and eps;
and fp16 / int8 variants beside fp32. Without --checkpoint the generators have random
weights (speed does not depend on what they learned; the JSON says so) and the crafting
source is a MNIST CNN trained for one epoch on 2,000 images.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import torch
from PIL import Image

from agscm import __version__
from agscm.attacks.registry import make_attack
from agscm.contract import SIZE_MULTIPLE, GeneratorMetadata
from agscm.data import load_split
from agscm.data.budget import default_eps
from agscm.export.onnx_export import ContractModule, export_generator
from agscm.export.variants import to_fp16, to_int8
from agscm.models.generator import Generator, GeneratorConfig
from agscm.models.generator_checkpoint import load_generator
from agscm.models.registry import load_classifier
from agscm.runtime import GeneratorModel
from agscm.train.zoo import ZooConfig, train_classifier

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("AGSCM_DATA", REPO.parent / "shared" / "data"))
PRECISIONS = ("fp32", "fp16", "int8")
TMPFS = Path("/dev/shm")


def median_seconds(function, repeats: int) -> float:
    """Median wall time of `function()` after one warm-up call."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def generator_for(channels: int, checkpoint: Path | None) -> tuple[Generator, str]:
    """The checkpoint's generator when its channels fit, else the default architecture untrained."""
    if checkpoint is not None:
        generator, meta, _ = load_generator(checkpoint)
        if generator.config.channels == channels:
            return generator, f"checkpoint {checkpoint}"
    torch.manual_seed(0)
    config = GeneratorConfig(channels=channels, eps=default_eps(channels))
    return Generator(config).eval(), "random weights (untrained), default architecture"


def write_models(generator: Generator, folder: Path, calibration: np.ndarray) -> dict[str, Path]:
    """fp32, fp16 and int8 ONNX files of `generator` (metadata marks them as benchmark models)."""
    config = generator.config
    metadata = GeneratorMetadata(__version__, config.channels, config.eps, config.norm,
                                 tuple(calibration.shape[-2:]), SIZE_MULTIPLE, "benchmark", [],
                                 0.0, {"generator": asdict(config)})
    model = export_generator(generator, metadata, calibration[:2])
    paths = {p: folder / f"G{config.channels}.{p}.onnx" for p in PRECISIONS}
    onnx.save(model, paths["fp32"])
    onnx.save(to_fp16(model), paths["fp16"])
    to_int8(paths["fp32"], paths["int8"], calibration)
    for precision in ("fp16", "int8"):  # the runtime checks the metadata, so keep it
        variant = onnx.load(paths[precision])
        del variant.metadata_props[:]
        onnx.helper.set_model_props(variant, {**metadata.to_props(), "precision": precision})
        onnx.save(variant, paths[precision])
    return paths


def inference(generator: Generator, paths: dict[str, Path], images: np.ndarray, threads: int,
              repeats: int) -> dict:
    """Seconds per batch: torch eager vs onnxruntime, same generator, batch and threads."""
    torch.set_num_threads(threads)
    module = ContractModule(generator).eval()
    batch = torch.from_numpy(images)
    with torch.inference_mode():
        torch_s = median_seconds(lambda: module(batch), repeats)
    row = {"batch": list(images.shape), "torch_eager_ms": 1000 * torch_s,
           "load_average_1min": os.getloadavg()[0]}
    for precision, path in paths.items():
        model = GeneratorModel(path, device="cpu", threads=threads)
        seconds = median_seconds(lambda model=model: model.run(images), repeats)
        row[f"onnxruntime_{precision}_ms"] = 1000 * seconds
        row[f"onnxruntime_{precision}_speedup_vs_torch"] = torch_s / seconds
    return row


# A forked child's peak RSS counts the parent's pages it held before exec (this process has
# torch loaded), so `agscm perturb` is started by a small launcher and measured there.
LAUNCHER = """
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stdout)
sys.exit(code)
"""


def perturb_folder_child(model: Path, source: Path, threads: int,
                         out_parent: Path | None = None) -> dict:
    """`agscm perturb` in a child process: its own images/s, wall time, and peak RSS."""
    with tempfile.TemporaryDirectory(prefix="agscm-bench-out-", dir=out_parent) as out:
        command = [sys.executable, "-c", LAUNCHER, sys.executable, "-c",
                   "from agscm.cli import main; main()", "perturb", str(source), out,
                   "--model", str(model), "--device", "cpu"]
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True,
                                env={**os.environ, "AGSCM_THREADS": str(threads)})
        wall = time.perf_counter() - start
    match = re.search(r"(\d+) ok.* in ([\d.]+) s \((\d+) images/s\)", result.stderr)
    if result.returncode != 0 or match is None:
        raise SystemExit(f"agscm perturb failed:\n{result.stderr}")
    return {"images": int(match[1]), "run_seconds": float(match[2]),
            "images_per_second": int(match[3]), "wall_seconds_with_startup": wall,
            "peak_rss_mb": int(result.stdout) / 1024, "load_average_1min": os.getloadavg()[0]}


def folder_benchmarks(paths_by_data: dict[str, dict[str, Path]], folders: dict[str, Path],
                      threads: int) -> dict:
    runs = [(name, precision, None) for name, paths in paths_by_data.items()
            for precision in paths]
    if TMPFS.is_dir():  # the same fp32 runs writing to memory: the pipeline without the disk
        runs += [(name, "fp32", TMPFS) for name in paths_by_data]
    rows = {}
    for name, precision, out_parent in runs:
        row = perturb_folder_child(paths_by_data[name][precision], folders[name], threads,
                                   out_parent)
        label = f"{name}_{precision}" + ("_out_on_tmpfs" if out_parent else "")
        rows[label] = row
        print(f"  {label}: {row['images_per_second']} images/s ({row['images']} images), "
              f"peak RSS {row['peak_rss_mb']:.0f} MB, load {row['load_average_1min']:.1f}")
    rows["peak_rss_mb_max"] = max(row["peak_rss_mb"] for row in rows.values())
    return rows


def crafting(generator: Generator, model_path: Path, source: torch.nn.Module, count: int,
             threads: int) -> dict:
    """Seconds per image for the generator vs PGD-10 and ATA on the same images, source, eps."""
    torch.set_num_threads(threads)
    test = load_split(DATA / "mnist", "test").subset(count)
    pixels = test.as_float()
    images, labels = torch.from_numpy(pixels), torch.from_numpy(test.labels)
    eps = generator.config.eps
    model = GeneratorModel(model_path, device="cpu", threads=threads)
    rows = {"images": count, "eps": eps,
            "generator_onnxruntime_s": median_seconds(lambda: model.run(pixels), 3)}
    module = ContractModule(generator).eval()
    with torch.inference_mode():
        rows["generator_torch_s"] = median_seconds(lambda: module(images), 3)
    torch.manual_seed(0)
    for name in ("pgd", "ata"):
        attack = make_attack(name, source, eps, channels=1, steps=10)
        start = time.perf_counter()
        adversarial = attack(images, labels)
        rows[f"{name}10_s"] = time.perf_counter() - start
        rows[f"{name}10_source_acc"] = float((source(adversarial).argmax(1) == labels)
                                              .float().mean())
        rows[f"speedup_vs_{name}10"] = rows[f"{name}10_s"] / rows["generator_onnxruntime_s"]
    with torch.no_grad():
        adversarial = torch.from_numpy(model.run(pixels))
        rows["generator_source_acc"] = float((source(adversarial).argmax(1) == labels)
                                             .float().mean())
    return rows


def cifar_folder(archive: Path, target: Path, limit: int) -> Path:
    """Unpack the first `limit` CIFAR-10 test JPEGs (class folders kept) into `target`."""
    with tarfile.open(archive) as tar:
        members = [m for m in tar if m.isfile() and m.name.startswith("test/")][:limit]
        tar.extractall(target, members=members, filter="data")
    return target / "test"


def folder_sample(folder: Path, count: int) -> np.ndarray:
    """The first `count` JPEGs of a folder as float32 NCHW in [0, 1]."""
    files = sorted(folder.rglob("*.jpg"))[:count]
    pixels = np.stack([np.asarray(Image.open(path).convert("RGB")) for path in files])
    return pixels.transpose(0, 3, 1, 2).astype(np.float32) / 255


def mnist_folder(target: Path, limit: int) -> Path:
    test = load_split(DATA / "mnist", "test").subset(limit)
    for index, (image, label) in enumerate(zip(test.images[:, 0], test.labels, strict=True)):
        folder = target / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{index:05d}.png")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, help="generator checkpoint to measure")
    parser.add_argument("--zoo", type=Path, help="zoo holding the checkpoint's source model")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/runtime.json")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--images", type=int, default=10_000, help="images per folder run")
    parser.add_argument("--craft-images", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()

    results: dict = {"agscm_version": __version__, "threads": args.threads,
                     "cpu_count": os.cpu_count(),
                     "note": "a shared machine: other jobs' load (load_average_1min) slows every "
                             "number here, torch's multi-threaded kernels most of all",
                     "platform": platform.platform(), "torch": torch.__version__,
                     "onnxruntime": onnxruntime.__version__}
    with tempfile.TemporaryDirectory(prefix="agscm-bench-") as work_dir:
        work = Path(work_dir)
        folders = {"cifar10": cifar_folder(DATA / "cifar10-jpeg.tar.gz", work / "cifar",
                                           args.images),
                   "mnist": mnist_folder(work / "mnist", args.images)}
        samples = {"cifar10": folder_sample(folders["cifar10"], 256),  # int8 calibration too
                   "mnist": load_split(DATA / "mnist", "train").subset(256).as_float()}
        generators, paths, results["generators"] = {}, {}, {}
        for name, channels in (("cifar10", 3), ("mnist", 1)):
            generators[name], origin = generator_for(channels, args.checkpoint)
            paths[name] = write_models(generators[name], work, samples[name])
            results["generators"][name] = {"origin": origin,
                                           "config": asdict(generators[name].config)}

        print(f"inference, batch {args.batch}, {args.threads} threads:")
        results["inference"] = {}
        for name in paths:
            size = samples[name].shape[-1]
            row = inference(generators[name], paths[name], samples[name][:args.batch],
                            args.threads, args.repeats)
            results["inference"][name] = row
            print(f"  {name} {size}x{size}: torch {row['torch_eager_ms']:.1f} ms, onnxruntime "
                  + ", ".join(f"{p} {row[f'onnxruntime_{p}_ms']:.1f} ms "
                              f"({row[f'onnxruntime_{p}_speedup_vs_torch']:.1f}x)"
                              for p in PRECISIONS))

        print("folder -> folder (agscm perturb in a child process):")
        results["folder"] = folder_benchmarks(paths, folders, args.threads)

        if args.checkpoint is not None and args.zoo is not None:
            _, meta, _ = load_generator(args.checkpoint)
            source, _ = load_classifier(meta["sources"][0], args.zoo)
            results["crafting_source"] = meta["sources"][0]
        else:
            torch.set_num_threads(1)
            path = train_classifier(ZooConfig(data=str(DATA / "mnist"), epochs=1,
                                              train_limit=2000), work / "src.safetensors",
                                    test_limit=500)
            source, _ = load_classifier(path)
            results["crafting_source"] = "MNIST CNN, 1 epoch on 2,000 images (quick)"
        results["crafting"] = crafting(generators["mnist"], paths["mnist"]["fp32"], source,
                                       args.craft_images, args.threads)
        craft = results["crafting"]
        print(f"crafting {args.craft_images} MNIST images at eps {craft['eps']:.3g}: generator "
              f"(onnxruntime) {craft['generator_onnxruntime_s']:.3f} s, PGD-10 "
              f"{craft['pgd10_s']:.2f} s ({craft['speedup_vs_pgd10']:.0f}x), ATA-10 "
              f"{craft['ata10_s']:.2f} s ({craft['speedup_vs_ata10']:.0f}x)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
