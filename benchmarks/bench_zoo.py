"""Zoo benchmark: clean and PGD-40 accuracy of trained zoo models, and seconds per epoch.

    python benchmarks/bench_zoo.py --zoo runs/zoo --data ../shared/data/mnist \
        --models mnist-natural mnist-adv mnist-secret --out benchmarks/results/zoo_mnist.json

    python benchmarks/bench_zoo.py --cifar-run ../shared/data/cifar10-jpeg.tar.gz \
        --cifar-limit 5000 --out benchmarks/results/zoo_cifar10.json

The first form measures existing models (PGD-40, eps 0.3, step 0.01, random start, as in the
MadryLab MNIST challenge). The second trains CIFAR-10 `natural` and `adv` for one epoch on a
slice of the real data, reports accuracy and seconds per epoch, and extrapolates a full zoo.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from agscm.attacks.pgd import PGD
from agscm.data import load_split
from agscm.train.batches import accuracy, iterate_batches
from agscm.train.registry import load_classifier
from agscm.train.zoo import ZooConfig, train_classifier


def pgd_accuracy(model: torch.nn.Module, data, eps: float, alpha: float, steps: int) -> float:
    """Accuracy under PGD with a random start (seeded, so reruns agree)."""
    torch.manual_seed(0)
    attack = PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=True)
    correct = 0
    for images, labels in iterate_batches(data, 500):
        correct += int((model(attack(images, labels)).argmax(1) == labels).sum())
    return correct / len(data)


def measure_models(args: argparse.Namespace) -> dict:
    test = load_split(args.data, "test")
    attacked = test.subset(args.pgd_limit)
    rows = {}
    for name in args.models:
        model, meta = load_classifier(name, Path(args.zoo))
        start = time.perf_counter()
        robust = pgd_accuracy(model, attacked, args.eps, args.alpha, args.steps)
        rows[name] = {
            "clean_acc": accuracy(model, test),
            f"pgd{args.steps}_acc": robust,
            "pgd_images": len(attacked),
            "pgd_seconds": time.perf_counter() - start,
            "epochs": meta["epoch"],
            "seconds_per_epoch": [round(r["seconds"], 1) for r in meta["history"]],
            "train_config": meta["train"],
        }
        print(f"{name}: clean {rows[name]['clean_acc']:.2%}  PGD-{args.steps} {robust:.2%} "
              f"on {len(attacked)} test images; s/epoch {rows[name]['seconds_per_epoch']}")
    return {"data": args.data, "eps": args.eps, "alpha": args.alpha, "steps": args.steps,
            "models": rows}


def cifar_short_run(args: argparse.Namespace) -> dict:
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        for kind in ("natural", "adv"):
            config = ZooConfig(data=args.cifar_run, kind=kind, epochs=1,
                               train_limit=args.cifar_limit, eps_warmup_epochs=0)
            path = train_classifier(config, Path(folder) / f"{kind}.safetensors",
                                    test_limit=2000)
            _, meta = load_classifier(path)
            seconds = meta["history"][0]["seconds"]
            per_full_epoch = seconds * 50_000 / args.cifar_limit
            rows[kind] = {"train_images": args.cifar_limit, "seconds": round(seconds, 1),
                          "test_acc_2000": meta["history"][0]["test_acc"],
                          "estimated_seconds_per_full_epoch": round(per_full_epoch)}
            print(f"cifar10 {kind}: 1 epoch on {args.cifar_limit} images in {seconds:.1f}s, "
                  f"test acc {meta['history'][0]['test_acc']:.2%} (2,000 test images); "
                  f"a full 50k epoch ~{per_full_epoch / 60:.1f} min")
    epochs = 30
    full = (rows["natural"]["estimated_seconds_per_full_epoch"]
            + 2 * rows["adv"]["estimated_seconds_per_full_epoch"]) * epochs
    print(f"full CIFAR-10 zoo (natural + adv + secret, {epochs} epochs each): ~{full / 3600:.1f} h")
    return {"data": args.cifar_run, "runs": rows, "full_zoo_epochs": epochs,
            "full_zoo_hours_estimate": round(full / 3600, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--zoo", default="runs/zoo")
    parser.add_argument("--data", default="../shared/data/mnist")
    parser.add_argument("--models", nargs="*", default=[])
    parser.add_argument("--eps", type=float, default=0.3)
    parser.add_argument("--alpha", type=float, default=0.01)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--pgd-limit", type=int, default=None, help="PGD on the first N images")
    parser.add_argument("--cifar-run", default=None, help="CIFAR-10 data for a short run")
    parser.add_argument("--cifar-limit", type=int, default=5000)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    result = {"torch_threads": torch.get_num_threads()}
    if args.models:
        result["mnist"] = measure_models(args)
    if args.cifar_run:
        result["cifar10"] = cifar_short_run(args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
