"""Copy finished checkpoints without their optimizer state (weights, config and history only).

    python benchmarks/strip_optimizer.py runs/zoo/*.safetensors --out runs/zoo-weights

The optimizer state is only needed to train further; a finished model is 2-3x smaller
without it, which is what travels back from a GPU machine. Unfinished checkpoints are refused.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from agscm.models.checkpoint import load_checkpoint, save_checkpoint, without_optimizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    for path in args.checkpoints:
        tensors, meta = load_checkpoint(path)
        if meta.get("epoch", 0) < meta.get("train", {}).get("epochs", 0):
            print(f"skip {path}: unfinished ({meta['epoch']}/{meta['train']['epochs']} epochs)")
            continue
        weights, meta = without_optimizer(tensors, meta)
        save_checkpoint(args.out / path.name, weights, meta)
        print(f"{path.name}: {len(weights)} tensors")


if __name__ == "__main__":
    main()
