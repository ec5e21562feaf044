"""Train a data set's whole zoo (agscm.eval.datasets), several models at once.

    python benchmarks/train_zoo.py cifar10 --zoo runs/zoo --device cuda --jobs 6
    python benchmarks/train_zoo.py mnist --zoo runs/zoo --only mnist-mlp-natural --jobs 1
    python benchmarks/train_zoo.py cifar10 --zoo runs/zoo-cost --train-limit 5000 --epochs 1 \
        --out benchmarks/results/zoo_cifar10_cpu_cost.json   # what an epoch costs here

Each model trains in its own process with `train_classifier`, exactly as `agscm zoo train` with
the spec's flags would (same config, so either can resume the other's checkpoint). On one GPU
the small models leave it mostly idle, so running them side by side is several times faster
than one after another. Writes `<zoo>/<name>.log` per model and prints the seconds each took.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import asdict
from pathlib import Path

import torch

from agscm.eval.datasets import SPECS
from agscm.eval.parallel import run_jobs
from agscm.eval.report import write_json
from agscm.models.checkpoint import read_meta
from agscm.models.registry import SUFFIX
from agscm.provenance import cpu_description
from agscm.train.precision import PRECISIONS, resolve_precision
from agscm.train.zoo import ZooConfig, train_classifier


def timed(config: ZooConfig, path: Path, device: str, precision: str | None) -> float:
    start = time.perf_counter()
    train_classifier(config, path, device=device, precision=precision)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("spec", choices=sorted(SPECS))
    parser.add_argument("--data", default=None, help="data path [default: the spec's]")
    parser.add_argument("--zoo", default="runs/zoo")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--precision", choices=PRECISIONS, default=None,
                        help="training steps' precision [default: bf16 on CUDA, fp32 on CPU]")
    parser.add_argument("--only", nargs="*", default=None, help="train only these names")
    parser.add_argument("--train-limit", type=int, default=None,
                        help="first N training images only (a smoke test; not the spec's model)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="N epochs instead of the spec's (a cost measurement; not its model)")
    parser.add_argument("--out", default=None, help="JSON file for the seconds each model took")
    args = parser.parse_args()
    changes = {key: value for key, value in (("train_limit", args.train_limit),
                                              ("epochs", args.epochs)) if value}
    configs = {name: config for name, config in SPECS[args.spec].zoo_configs(args.data, **changes).items()
               if not args.only or name in args.only}
    zoo = Path(args.zoo)
    zoo.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    start = time.perf_counter()
    paths = [zoo / f"{name}{SUFFIX}" for name in configs]
    seconds = run_jobs(timed, [(config, path, args.device, args.precision) for config, path
                               in zip(configs.values(), paths, strict=True)],
                       [zoo / f"{n}.log" for n in configs], args.jobs)
    for name, spent in zip(configs, seconds, strict=True):
        print(f"{name}: {spent:.0f} s", flush=True)
    wall = time.perf_counter() - start
    print(f"zoo {args.spec}: {len(configs)} models in {wall:.0f} s wall")
    if args.out:
        write_json(Path(args.out), {
            "spec": args.spec, "device": args.device, "cpu": cpu_description(),
            "precision": resolve_precision(args.precision, args.device), "jobs": args.jobs,
            "threads_per_job": int(os.environ["OMP_NUM_THREADS"]), "torch": torch.__version__,
            "changes": changes, "wall_seconds": round(wall, 1),
            "models": {name: {"seconds": round(spent, 1), "history": read_meta(path)["history"],
                              "config": asdict(config)}
                       for (name, config), spent, path in zip(configs.items(), seconds, paths,
                                                              strict=True)}})


if __name__ == "__main__":
    main()
