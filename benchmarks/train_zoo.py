"""Train a data set's whole zoo (agscm.eval.datasets), several models at once.

    python benchmarks/train_zoo.py cifar10 --zoo runs/zoo --device cuda --jobs 6
    python benchmarks/train_zoo.py mnist --zoo runs/zoo --only mnist-mlp-natural --jobs 1

Each model trains in its own process with `train_classifier`, exactly as `agscm zoo train` with
the spec's flags would (same config, so either can resume the other's checkpoint). On one GPU
the small models leave it mostly idle, so running them side by side is several times faster
than one after another. Writes `<zoo>/<name>.log` per model and prints the seconds each took.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from pathlib import Path

from agscm.eval.datasets import SPECS


def _train(name: str, spec_name: str, data: str | None, zoo: str, device: str,
           train_limit: int | None) -> tuple[str, float]:
    from agscm.models.registry import SUFFIX
    from agscm.train.zoo import train_classifier

    config = SPECS[spec_name].zoo_configs(data, train_limit=train_limit)[name]
    log = open(Path(zoo) / f"{name}.log", "a")  # noqa: SIM115 - the process's stderr until it ends
    sys.stdout = sys.stderr = log
    start = time.perf_counter()
    train_classifier(config, Path(zoo) / f"{name}{SUFFIX}", device=device)
    return name, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("spec", choices=sorted(SPECS))
    parser.add_argument("--data", default=None, help="data path [default: the spec's]")
    parser.add_argument("--zoo", default="runs/zoo")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--only", nargs="*", default=None, help="train only these names")
    parser.add_argument("--train-limit", type=int, default=None,
                        help="first N training images only (a smoke test; not the spec's model)")
    args = parser.parse_args()
    names = [n for n in SPECS[args.spec].zoo_configs(args.data) if not args.only or n in args.only]
    Path(args.zoo).mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    start = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        jobs = [pool.apply_async(_train, (n, args.spec, args.data, args.zoo, args.device,
                                                   args.train_limit))
                for n in names]
        for job in jobs:
            name, seconds = job.get()
            print(f"{name}: {seconds:.0f} s", flush=True)
    print(f"zoo {args.spec}: {len(names)} models in {time.perf_counter() - start:.0f} s wall")


if __name__ == "__main__":
    main()
