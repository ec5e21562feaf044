"""Runtime benchmark: this checkout against an earlier version side by side, and the engine parts.

    python benchmarks/bench_runtime.py [--baseline 171fe7a] [--repeats 3] [--photos 50]
        [--out benchmarks/results/runtime.json]

In one run, on the same machine and model (the default 3-channel CIFAR-10 generator, random
weights: speed does not depend on what a generator learned):
1. folder -> folder, `agscm perturb` of the baseline commit and of this checkout, each
   installed alone (base install, no torch) in its own fresh venv, runs interleaved
   (baseline, new, new, baseline, ...) so both see the same load: the 10,000 CIFAR-10 test
   JPEGs (32x32) and `--photos` 1920x1080 photos. The photos are real data: each is 32
   CIFAR-10 test images upscaled (bicubic) to 240x270 and tiled 8x4, saved as JPEG q90.
   Per run: images/s (wall clock of the command, start-up included), CPU seconds of the
   whole process tree, and peak memory sampled every 20 ms: the sum of RSS over the process
   tree (the bar's measure) and the largest single process. Each run writes a fresh folder
   and keeps it until the series ends; each series starts 65 s after the last deletion
   (`settle`: deleted files slow the next file creations on this disk);
2. this checkout on the photos with `--tile` 128, 256, 384 and 512;
3. the array API: `Perturber.perturb_array` against a bare onnxruntime session with the
   same options on the same batch (32x32 batch 256, and one 1080p image);
4. the generator alone in onnxruntime vs PyTorch eager, batch 64 and 256, 1 and 2 threads
   (fp16/int8 variants beside fp32);
5. PNG compression levels on the perturbed photos: encode time and bytes;
6. crafting: the generator vs PGD-10 and ATA-10 on 500 MNIST test images.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import threading
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
from agscm.contract import INPUT_NAME, OUTPUT_NAME, SIZE_MULTIPLE, GeneratorMetadata
from agscm.data import load_split
from agscm.data.budget import default_eps
from agscm.export.onnx_export import ContractModule, export_generator
from agscm.export.variants import to_fp16, to_int8
from agscm.models.generator import Generator, GeneratorConfig
from agscm.models.registry import load_classifier
from agscm.runtime import GeneratorModel, Perturber
from agscm.runtime.png import encode_png
from agscm.runtime.session import session_options
from agscm.train.zoo import ZooConfig, train_classifier

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("AGSCM_DATA", REPO.parent / "shared" / "data"))
PRECISIONS = ("fp32", "fp16", "int8")
SETTLE_SECONDS = 65  # see settle()


def medians(rows: list[dict]) -> dict[str, float]:
    """Per key, the median over runs."""
    return {key: float(np.median([row[key] for row in rows])) for key in rows[0]}


def median_seconds(function, repeats: int) -> float:
    """Median wall time of `function()` after one warm-up call."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


# --- models and data ------------------------------------------------------------------------

def default_generator(channels: int) -> Generator:
    torch.manual_seed(0)
    return Generator(GeneratorConfig(channels=channels, eps=default_eps(channels))).eval()


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


def write_benchmark_model(path: Path) -> None:
    """The default 3-channel generator (random weights) as `path` and its fp16 variant."""
    with tempfile.TemporaryDirectory() as work:
        sample = np.random.default_rng(0).random((32, 3, 32, 32), dtype=np.float32)
        paths = write_models(default_generator(3), Path(work), sample)
        path.parent.mkdir(parents=True, exist_ok=True)
        paths["fp32"].replace(path)
        paths["fp16"].replace(path.with_name(f"{path.stem}.fp16{path.suffix}"))
    print(f"wrote {path} and {path.with_name(f'{path.stem}.fp16{path.suffix}')}")


def cifar_folder(archive: Path, target: Path, limit: int) -> Path:
    """The first `limit` CIFAR-10 test JPEGs (class folders kept) unpacked into `target`."""
    with tarfile.open(archive) as tar:
        members = [m for m in tar if m.isfile() and m.name.startswith("test/")][:limit]
        tar.extractall(target, members=members, filter="data")
    return target / "test"


def photo_folder(cifar: Path, target: Path, count: int) -> Path:
    """`count` 1920x1080 JPEG photos, each 32 distinct CIFAR-10 test images upscaled (bicubic)
    to 240x270 and tiled 8 wide, 4 high."""
    target.mkdir(parents=True)
    sources = sorted(cifar.rglob("*.jpg"), key=lambda p: (p.name, p.parent.name))
    for index in range(count):
        photo = Image.new("RGB", (1920, 1080))
        for slot, path in enumerate(sources[32 * index:32 * index + 32]):
            tile = Image.open(path).convert("RGB").resize((240, 270), Image.BICUBIC)
            photo.paste(tile, ((slot % 8) * 240, (slot // 8) * 270))
        photo.save(target / f"photo{index:03d}.jpg", quality=90)
    return target


# --- two installs side by side --------------------------------------------------------------

def base_venv(source: Path, target: Path) -> Path:
    """A fresh venv with `source` installed alone (the base install: no torch, no onnx)."""
    subprocess.run([sys.executable, "-m", "venv", str(target)], check=True)
    python = target / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", str(source)], check=True,
                   stdout=subprocess.DEVNULL)
    blocked = subprocess.run([str(python), "-c", "import torch"], capture_output=True)
    if blocked.returncode == 0:
        raise SystemExit(f"{target}: torch is importable in what should be a base install")
    return target / "bin" / "agscm"


def checkout_copy(revision: str | None, target: Path) -> Path:
    """The tree of `revision` (None: this working tree, tracked and new files) in `target`."""
    target.mkdir(parents=True)
    if revision is None:
        files = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others",
                                "--exclude-standard"], capture_output=True, check=True).stdout
        listing = subprocess.Popen(["tar", "--null", "--ignore-failed-read", "-T", "-", "-cf",
                                    "-"], cwd=REPO, stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE)
        archive = listing.communicate(files)[0]
    else:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", revision],
                                 capture_output=True, check=True).stdout
    subprocess.run(["tar", "-xf", "-", "-C", str(target)], input=archive, check=True)
    return target


def _tree(pid: int) -> list[int]:
    """`pid` and all its descendants (Linux /proc)."""
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    stack.extend(int(child) for child in handle.read().split())
        except OSError:
            continue
    return found


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def settle(work: Path) -> None:
    """Delete the outputs of earlier runs, flush, and wait until their inodes may be reused.

    This machine's disk is ext4 without a journal, where creating a file skips every inode
    freed in the last 60 s (360 s while its table block is unwritten): right after 10,000
    outputs were deleted, the next run creates each file past them (about 1.5x the wall
    time on the CIFAR-10 folder here, docs/RESULTS.md §4b).
    So runs in a series keep their outputs, and each series starts on a quiet file system.
    """
    subprocess.run(["rm", "-rf", str(work / "outputs")], check=True)
    os.sync()
    time.sleep(SETTLE_SECONDS)


def timed_perturb(agscm: Path, source: Path, model: Path, work: Path,
                  options: tuple[str, ...] = ()) -> dict:
    """One `agscm perturb` run: wall time, CPU of the process tree, peak memory. The output
    stays (see `settle`)."""
    (work / "outputs").mkdir(exist_ok=True)
    out = Path(tempfile.mkdtemp(prefix="out-", dir=work / "outputs"))
    before = os.times()
    start = time.perf_counter()
    process = subprocess.Popen([str(agscm), "perturb", str(source), str(out), "--model",
                                str(model), "--device", "cpu", *options],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak_sum, peak_one, done = 0.0, 0.0, threading.Event()

    def sample() -> None:
        nonlocal peak_sum, peak_one
        while not done.is_set():
            sizes = [_rss_mb(pid) for pid in _tree(process.pid)]
            peak_sum, peak_one = max(peak_sum, sum(sizes)), max(peak_one, max(sizes))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    _, stderr = process.communicate()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    after = os.times()
    if process.returncode != 0:
        raise SystemExit(f"{agscm} perturb failed:\n{stderr}")
    outputs = list(out.rglob("*.png"))
    images, output_bytes = len(outputs), sum(path.stat().st_size for path in outputs)
    return {"images": images, "wall_seconds": wall, "images_per_second": images / wall,
            "cpu_seconds": (after.children_user - before.children_user)
                           + (after.children_system - before.children_system),
            "peak_rss_sum_mb": peak_sum, "peak_rss_largest_process_mb": peak_one,
            "output_mb": output_bytes / 1e6, "load_average_1min": os.getloadavg()[0]}


def side_by_side(installs: dict[str, Path], folders: dict[str, Path], model: Path,
                 repeats: int, work: Path) -> dict:
    """Each workload, each install, `repeats` times, interleaved in alternating order (A B,
    B A, ...: each run's outputs are still being written back while the next one runs, so
    neither version should always run first or second); medians and ratios."""
    results: dict = {}
    for workload, folder in folders.items():
        settle(work)
        runs: dict[str, list[dict]] = {name: [] for name in installs}
        for repeat in range(repeats):
            order = list(installs.items())
            for name, agscm in order if repeat % 2 == 0 else reversed(order):
                row = timed_perturb(agscm, folder, model, work)
                runs[name].append(row)
                print(f"  {workload} {name} run {repeat + 1}: {row['images_per_second']:.1f} "
                      f"images/s, {row['cpu_seconds']:.1f} CPU s, peak RSS "
                      f"{row['peak_rss_sum_mb']:.0f} MB (sum), load "
                      f"{row['load_average_1min']:.1f}", flush=True)
        summary = {name: medians(rows) for name, rows in runs.items()}
        baseline, new = (summary[name] for name in installs)
        results[workload] = {
            "runs": runs, "median": summary,
            "speedup_images_per_second": new["images_per_second"]
                                         / baseline["images_per_second"],
            "speedup_per_run": [n["images_per_second"] / b["images_per_second"]
                                for b, n in zip(*runs.values(), strict=True)],
            "cpu_seconds_ratio": baseline["cpu_seconds"] / new["cpu_seconds"],
            "max_peak_rss_sum_mb": {name: max(row["peak_rss_sum_mb"] for row in rows)
                                    for name, rows in runs.items()}}
        print(f"  {workload}: {results[workload]['speedup_images_per_second']:.2f}x images/s "
              f"(median of {repeats}), {results[workload]['cpu_seconds_ratio']:.2f}x less CPU",
              flush=True)
    return results


# --- the engine's parts ---------------------------------------------------------------------

def tile_sizes(agscm: Path, photos: Path, model: Path, repeats: int, work: Path) -> dict:
    """This checkout on the photos with each `--tile`, interleaved: images/s and peak memory
    (why the default is what it is: onnxruntime's memory grows with the pixels of one call,
    and smaller tiles recompute more overlap)."""
    sizes = (128, 256, 384, 512)
    runs: dict[int, list[dict]] = {size: [] for size in sizes}
    settle(work)
    for _ in range(repeats):
        for size in sizes:
            runs[size].append(timed_perturb(agscm, photos, model, work, ("--tile", str(size))))
    rows = {}
    for size, size_runs in runs.items():
        middle = medians(size_runs)
        rows[f"tile_{size}"] = {
            "images_per_second": middle["images_per_second"], "cpu_seconds": middle["cpu_seconds"],
            "max_peak_rss_sum_mb": max(r["peak_rss_sum_mb"] for r in size_runs)}
        row = rows[f"tile_{size}"]
        print(f"  --tile {size}: {row['images_per_second']:.2f} images/s, {row['cpu_seconds']:.1f}"
              f" CPU s, peak RSS {row['max_peak_rss_sum_mb']:.0f} MB (sum)", flush=True)
    return rows


def array_api(model: Path, batches: dict[str, np.ndarray], repeats: int) -> dict:
    """perturb_array against a bare session with the same options, interleaved."""
    threads = os.cpu_count() or 1
    bare = onnxruntime.InferenceSession(str(model), session_options(threads),
                                        providers=["CPUExecutionProvider"])
    perturber = Perturber(model, device="cpu", threads=threads)
    rows = {}
    for name, batch in batches.items():
        bare_times, api_times = [], []
        for _ in range(repeats):
            bare_times.append(median_seconds(
                lambda batch=batch: bare.run([OUTPUT_NAME], {INPUT_NAME: batch}), 1))
            api_times.append(median_seconds(lambda batch=batch: perturber.perturb_array(batch), 1))
        bare_s, api_s = float(np.median(bare_times)), float(np.median(api_times))
        rows[name] = {"batch": list(batch.shape), "bare_session_images_per_second":
                      len(batch) / bare_s, "perturb_array_images_per_second": len(batch) / api_s,
                      "megapixels_per_second": batch[:, 0].size / bare_s / 1e6,
                      "perturb_array_vs_bare": bare_s / api_s}
        print(f"  {name}: perturb_array {rows[name]['perturb_array_vs_bare']:.1%} of the bare "
              f"session ({rows[name]['bare_session_images_per_second']:.1f} images/s, "
              f"{rows[name]['megapixels_per_second']:.2f} MP/s)", flush=True)
    return rows


def inference(generator: Generator, paths: dict[str, Path], images: np.ndarray,
              repeats: int) -> list[dict]:
    """Per batch: torch eager vs onnxruntime, same generator, batch and threads."""
    module = ContractModule(generator).eval()
    rows = []
    for batch_size in (64, 256):
        batch = np.ascontiguousarray(np.resize(images, (batch_size, *images.shape[1:])))
        for threads in (1, 2):
            torch.set_num_threads(threads)
            tensor = torch.from_numpy(batch)
            with torch.inference_mode():
                torch_s = median_seconds(lambda tensor=tensor: module(tensor), repeats)
            row = {"batch": list(batch.shape), "threads": threads,
                   "torch_eager_ms": 1000 * torch_s, "load_average_1min": os.getloadavg()[0]}
            for precision, path in paths.items():
                model = GeneratorModel(path, device="cpu", threads=threads)
                seconds = median_seconds(lambda model=model, b=batch: model.run(b), repeats)
                row[f"onnxruntime_{precision}_ms"] = 1000 * seconds
                row[f"onnxruntime_{precision}_speedup_vs_torch"] = torch_s / seconds
            rows.append(row)
            print(f"  batch {batch_size}, {threads} thread(s): torch {torch_s * 1000:.1f} ms, "
                  + ", ".join(f"{p} {row[f'onnxruntime_{p}_speedup_vs_torch']:.2f}x"
                              for p in PRECISIONS), flush=True)
    return rows


def png_levels(photo: Path, model: Path) -> dict:
    """Encode one perturbed photo at each level: milliseconds and bytes (Pillow's level 6,
    what the baseline writes, beside)."""
    perturber = Perturber(model, device="cpu")
    values = np.asarray(perturber.perturb_image(Image.open(photo)))
    rows = {}
    for level in (0, 1, 3, 6, 9):
        seconds = median_seconds(lambda level=level: encode_png(values, level), 3)
        rows[f"level_{level}"] = {"ms": 1000 * seconds,
                                  "bytes": len(encode_png(values, level))}
    buffer = io.BytesIO()
    seconds = median_seconds(lambda: Image.fromarray(values).save(io.BytesIO(), "PNG"), 3)
    Image.fromarray(values).save(buffer, "PNG")
    rows["pillow_level_6"] = {"ms": 1000 * seconds, "bytes": len(buffer.getvalue())}
    for name, row in rows.items():
        row["bytes_vs_pillow"] = row["bytes"] / rows["pillow_level_6"]["bytes"]
        print(f"  {name}: {row['ms']:.0f} ms, {row['bytes'] / 1e6:.2f} MB "
              f"({row['bytes_vs_pillow']:.2f}x Pillow's level 6)", flush=True)
    return rows


def crafting(generator: Generator, model_path: Path, source: torch.nn.Module, count: int,
             threads: int) -> dict:
    """Seconds for the generator vs PGD-10 and ATA-10 on the same images, source and eps."""
    torch.set_num_threads(threads)
    test = load_split(DATA / "mnist", "test").subset(count)
    pixels = test.as_float()
    images, labels = torch.from_numpy(pixels), torch.from_numpy(test.labels)
    eps = generator.config.eps
    model = GeneratorModel(model_path, device="cpu", threads=threads)
    rows = {"images": count, "eps": eps,
            "generator_onnxruntime_s": median_seconds(lambda: model.run(pixels), 3)}
    torch.manual_seed(0)
    for name in ("pgd", "ata"):
        attack = make_attack(name, source, eps, channels=1, steps=10)
        start = time.perf_counter()
        attack(images, labels)
        rows[f"{name}10_s"] = time.perf_counter() - start
        rows[f"speedup_vs_{name}10"] = rows[f"{name}10_s"] / rows["generator_onnxruntime_s"]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", default="171fe7a", help="git revision to compare with")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/runtime.json")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=10_000, help="CIFAR-10 test JPEGs")
    parser.add_argument("--photos", type=int, default=50)
    parser.add_argument("--craft-images", type=int, default=500)
    parser.add_argument("--write-model", type=Path, metavar="G.onnx",
                        help="only write the benchmark generator (fp32, and fp16 beside it as "
                             "G.fp16.onnx) for benchmarks/gpu_check.sh, then stop")
    args = parser.parse_args()
    if args.write_model is not None:
        write_benchmark_model(args.write_model)
        return

    results: dict = {
        "agscm_version": __version__, "cpu_count": os.cpu_count(), "baseline": args.baseline,
        "platform": platform.platform(), "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "note": "a shared machine: other jobs' load (load_average_1min) slows every number; "
                "the side-by-side runs are interleaved so both versions see the same load"}
    with tempfile.TemporaryDirectory(prefix="agscm-bench-") as work_dir:
        work = Path(work_dir)
        cifar = cifar_folder(DATA / "cifar10-jpeg.tar.gz", work / "cifar", args.images)
        folders = {"cifar10_32x32": cifar,
                   "photos_1920x1080": photo_folder(cifar, work / "photos", args.photos)}
        sample = np.stack([np.asarray(Image.open(p).convert("RGB"))
                           for p in sorted(cifar.rglob("*.jpg"))[:256]])
        sample = sample.transpose(0, 3, 1, 2).astype(np.float32) / 255
        generator = default_generator(3)
        paths = write_models(generator, work, sample)
        results["generator"] = asdict(generator.config) | {"weights": "random (untrained)"}

        print(f"installing {args.baseline} and this checkout in fresh base venvs", flush=True)
        installs = {name: base_venv(checkout_copy(revision, work / f"src-{name}"),
                                    work / f"venv-{name}")
                    for name, revision in (("baseline", args.baseline), ("new", None))}
        print("folder -> folder, interleaved:", flush=True)
        results["folder"] = side_by_side(installs, folders, paths["fp32"], args.repeats, work)

        print("tile sizes on the photos (this checkout):", flush=True)
        results["tile_sizes"] = tile_sizes(installs["new"], folders["photos_1920x1080"],
                                           paths["fp32"], args.repeats, work)
        print("array API vs bare session:", flush=True)
        settle(work)  # the photo outputs' writeback would land in some timings, not others
        photo = np.asarray(Image.open(next(folders["photos_1920x1080"].glob("*.jpg"))))
        results["array_api"] = array_api(paths["fp32"], {
            "32x32_batch256": np.ascontiguousarray(sample),
            "1080p_batch1": np.ascontiguousarray(photo.transpose(2, 0, 1)[None], np.float32)
                            / np.float32(255)}, args.repeats * 3)
        print("generator: onnxruntime vs torch eager:", flush=True)
        results["inference_cifar10"] = inference(generator, paths, sample[:64], 5)
        print("PNG levels on a perturbed photo:", flush=True)
        results["png_levels_1080p"] = png_levels(
            next(folders["photos_1920x1080"].glob("*.jpg")), paths["fp32"])

        torch.set_num_threads(1)
        mnist_generator = default_generator(1)
        mnist_paths = write_models(mnist_generator, work,
                                   load_split(DATA / "mnist", "train").subset(256).as_float())
        source_path = train_classifier(ZooConfig(data=str(DATA / "mnist"), epochs=1,
                                                 train_limit=2000), work / "src.safetensors",
                                       test_limit=500)
        source, _ = load_classifier(source_path)
        print("crafting:", flush=True)
        results["crafting"] = crafting(mnist_generator, mnist_paths["fp32"], source,
                                       args.craft_images, 2)
        craft = results["crafting"]
        print(f"  generator {craft['generator_onnxruntime_s']:.3f} s, PGD-10 "
              f"{craft['pgd10_s']:.2f} s ({craft['speedup_vs_pgd10']:.0f}x), ATA-10 "
              f"{craft['ata10_s']:.2f} s ({craft['speedup_vs_ata10']:.0f}x)", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
