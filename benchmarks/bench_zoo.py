"""Zoo benchmark: clean and PGD accuracy of trained zoo models on the whole test set, and cost.

    python benchmarks/bench_zoo.py mnist --zoo runs/zoo --out benchmarks/results/zoo_mnist.json
    python benchmarks/bench_zoo.py cifar10 --zoo runs/zoo --device cuda \
        --out benchmarks/results/zoo_cifar10.json

The attack is the data set's challenge attack from agscm.eval.datasets: PGD-40 with step 0.01
at eps 0.3 (MNIST), PGD-20 with step 2/255 at eps 8/255 (CIFAR-10), both from a random start,
seeded. `--models` picks some of the spec's models (default: every one found in the zoo).
Seconds per epoch come from each checkpoint's own history (where it was trained).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from agscm.attacks.pgd import PGD
from agscm.data import load_split
from agscm.eval.datasets import SPECS
from agscm.eval.robustness import attacked_accuracy
from agscm.models.batches import accuracy
from agscm.models.registry import SUFFIX, load_classifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("spec", choices=sorted(SPECS))
    parser.add_argument("--data", default=None, help="data path [default: the spec's]")
    parser.add_argument("--zoo", default="runs/zoo")
    parser.add_argument("--models", nargs="*", default=None)
    parser.add_argument("--limit", type=int, default=None, help="first N test images only")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    spec = SPECS[args.spec]
    test = load_split(args.data or spec.data, "test").subset(args.limit)
    names = args.models or [n for n in spec.zoo_configs() if (Path(args.zoo) / f"{n}{SUFFIX}").exists()]
    rows = {}
    for name in names:
        model, meta = load_classifier(name, Path(args.zoo), device=args.device)
        start = time.perf_counter()
        robust = attacked_accuracy(model, test, PGD(model, eps=spec.eps, alpha=spec.check_alpha,
                                                     steps=spec.check_steps), args.device)
        rows[name] = {
            "arch": meta["model"]["arch"], "width": meta["model"]["width"],
            "parameters": sum(p.numel() for p in model.parameters()),
            "clean_acc": accuracy(model, test, device=args.device),
            f"pgd{spec.check_steps}_acc": robust, "test_images": len(test),
            "pgd_seconds": round(time.perf_counter() - start, 1), "epochs": meta["epoch"],
            "seconds_per_epoch": [round(r["seconds"], 1) for r in meta["history"]],
            "train_config": meta["train"]}
        print(f"{name}: clean {rows[name]['clean_acc']:.2%}  PGD-{spec.check_steps} {robust:.2%} "
              f"on {len(test)} test images; s/epoch {rows[name]['seconds_per_epoch']}", flush=True)
    result = {"spec": spec.name, "data": args.data or spec.data, "eps": spec.eps,
              "alpha": spec.check_alpha, "steps": spec.check_steps, "device": args.device,
              "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
              "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
              "models": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
