"""The Ray engine against the local engine on this machine: the engine's overhead on one node.

    python benchmarks/bench_ray.py [--images 10000] [--small 2000] [--repeats 3]
        [--model G.onnx] [--out benchmarks/results/ray.json]

The same `--images` real CIFAR-10 test JPEGs (32x32, from $AGSCM_DATA/cifar10-jpeg.tar.gz) go
through `agscm perturb` three ways, interleaved run by run so that all three see the same load:
1. `local`: the local engine (this process plus one worker process per extra core);
2. `ray`: `--engine ray` with no address: the command starts a Ray instance and stops it;
3. `ray-cluster`: `--engine ray --address` of a Ray instance that was already running (started
   here, as `ray start` would start a cluster's head): the job joins it, as on a cluster.
Each run writes a fresh OUT. Images/s = images / wall clock of the whole command (start-up
included), with the 1-minute load average at its start. Each mode also runs on the first
`--small` images, which splits its time into start-up and a marginal rate (the images/s once
running): marginal = (images - small) / (median time - median small time). The outputs of
the first runs are checked against the local engine's, byte for byte. Model: the default
3-channel CIFAR-10 generator (random weights: speed does not depend on what it learned), or
`--model`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import onnxruntime
import ray
from bench_runtime import DATA, REPO, cifar_folder, write_benchmark_model

MODES = ("local", "ray", "ray-cluster")


def perturb(source: Path, out: Path, model: Path, extra: list[str]) -> dict:
    """One `agscm perturb` in a fresh interpreter: wall seconds, load at start, its summary."""
    load = os.getloadavg()[0]
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", "from agscm.cli import main; main()",
                             "perturb", str(source), str(out), "-m", str(model), *extra],
                            capture_output=True, text=True, cwd=REPO)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"agscm perturb {' '.join(extra)} failed:\n{result.stderr[-3000:]}")
    summary = [line for line in result.stderr.splitlines() if " ok, " in line][-1]
    return {"seconds": round(seconds, 2), "load_1min": round(load, 2), "summary": summary}


def pngs(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000, help="CIFAR-10 test JPEGs (<= 10000)")
    parser.add_argument("--small", type=int, default=2_000, help="the short run's images")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", type=Path, help="generator ONNX (default: write one)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "ray.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        model = args.model
        if model is None:
            model = work / "G.onnx"
            write_benchmark_model(model)
        archive = DATA / "cifar10-jpeg.tar.gz"
        sources = {size: cifar_folder(archive, work / f"cifar-{size}", size)
                   for size in (args.small, args.images)}
        counts = {size: sum(1 for _ in source.rglob("*.jpg")) for size, source in sources.items()}
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, configure_logging=False,
                 log_to_driver=False)
        address = ray.get_runtime_context().gcs_address
        extra = {"local": [], "ray": ["--engine", "ray"],
                 "ray-cluster": ["--engine", "ray", "--address", address]}
        runs: dict[str, dict[int, list[dict]]] = {mode: {size: [] for size in sources}
                                                  for mode in MODES}
        try:
            for repeat in range(args.repeats):
                for mode in MODES:
                    for size, source in sources.items():
                        run = perturb(source, work / f"out-{mode}-{size}-{repeat}", model,
                                      extra[mode])
                        runs[mode][size].append(run)
                        print(f"{mode:12s} {counts[size]:6d} images "
                              f"{counts[size] / run['seconds']:7.0f} images/s "
                              f"({run['seconds']:.1f} s, load {run['load_1min']})", flush=True)
            local_bytes = pngs(work / f"out-local-{args.images}-0")
            identical = all(pngs(work / f"out-{mode}-{args.images}-0") == local_bytes
                            for mode in MODES[1:])
        finally:
            ray.shutdown()

    results = {}
    for mode in MODES:
        small, large = (statistics.median(r["seconds"] for r in runs[mode][size])
                        for size in (args.small, args.images))
        marginal = (counts[args.images] - counts[args.small]) / (large - small)
        results[mode] = {"images_per_second": round(counts[args.images] / large, 1),
                         "marginal_images_per_second": round(marginal, 1),
                         "start_up_seconds": round(small - counts[args.small] / marginal, 2)}
    local = results["local"]
    report = {
        "command": "python benchmarks/bench_ray.py " + " ".join(sys.argv[1:]),
        "images": counts[args.images], "small": counts[args.small], "repeats": args.repeats,
        "results": results,
        "ratio_to_local": {mode: round(results[mode]["images_per_second"]
                                       / local["images_per_second"], 3) for mode in MODES[1:]},
        "marginal_ratio_to_local": {mode: round(results[mode]["marginal_images_per_second"]
                                                / local["marginal_images_per_second"], 3)
                                    for mode in MODES[1:]},
        "outputs_identical": identical,
        "runs": {mode: {str(size): values for size, values in by_size.items()}
                 for mode, by_size in runs.items()},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "ray": ray.__version__, "onnxruntime": onnxruntime.__version__},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: report[k] for k in ("results", "ratio_to_local",
                                             "marginal_ratio_to_local", "outputs_identical")}))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
