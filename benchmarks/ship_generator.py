"""Write the card of a shipped generator from measurements: the transfer table, crafting speed
here, the training record.

    agscm export runs/ship/mnist-transfer.safetensors -o agscm/pretrained/mnist-transfer.onnx
    agscm evaluate ... --generator mnist-natural=agscm/pretrained/mnist-transfer.onnx ...
    python benchmarks/ship_generator.py runs/ship/mnist-transfer.safetensors \
        agscm/pretrained/mnist-transfer.onnx --table benchmarks/results/shipped_mnist_table.json \
        --default --summary "..." --train-command "agscm train ../shared/data/mnist ..."

The table is `agscm evaluate`'s transfer.json on the whole test set, with the shipped .onnx
file itself among its methods and the baselines from the same source; the card keeps every
cell of that source, each method's crafting images/s as measured there, and where the table
lives. Crafting speed of the exported file is measured here with the
torch-free runtime on this machine's cores: images/s at the data set's own size (batches of
256), and megapixels/s on one 1920x1080 image.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from agscm.data import load_split
from agscm.digest import file_digest
from agscm.eval.methods import generator_label
from agscm.models.checkpoint import read_meta
from agscm.runtime import Perturber
from agscm.runtime.pretrained import CARD_SUFFIX, card_from_json, write_card

SPEED_SECONDS = 10.0


def images_per_second(perturber: Perturber, batch: np.ndarray, seconds: float) -> float:
    perturber.perturb_array(batch)  # warm-up: the first call plans the graph
    start, done = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        perturber.perturb_array(batch)
        done += len(batch)
    return done / (time.perf_counter() - start)


def crafting_speed(model: Path, data: str) -> dict[str, Any]:
    perturber = Perturber(model, device="cpu")
    test = load_split(data, "test")
    batch = test.subset(256).as_float()
    photo = np.random.default_rng(0).random((1, test.channels, 1080, 1920), dtype=np.float32)
    per_photo = 1 / images_per_second(perturber, photo, SPEED_SECONDS)
    return {
        "images_per_second": round(images_per_second(perturber, batch, SPEED_SECONDS), 1),
        "image_size": list(batch.shape[-2:]),
        "megapixels_per_second_1920x1080": round(1920 * 1080 / 1e6 / per_photo, 2),
        "how": f"agscm.runtime.Perturber on the CPU ({os.cpu_count()} cores, "
               f"{platform.processor() or platform.machine()}), batches of 256 test images and one "
               f"1920x1080 image, {SPEED_SECONDS:.0f} s each after a warm-up call "
               "(python benchmarks/ship_generator.py)"}


def kept_crafting(model: Path) -> dict[str, Any]:
    """The crafting speed recorded in the card beside `model`, if that card was written for
    this very file."""
    path = model.with_suffix(CARD_SUFFIX)
    card = card_from_json(json.loads(path.read_text()), path)
    if card.sha256 != file_digest(model):
        raise SystemExit(f"{model}: the card beside it was written for another file; measure "
                         "the crafting speed again (drop --keep-crafting)")
    return card.crafting


def transfer_cells(table_path: Path, source: str, generator_method: str) -> dict[str, Any]:
    """Every cell of `source` in the table, by method and target, with each method's crafting
    speed there (`agscm evaluate`'s timing: an .onnx generator through the torch-free runtime,
    the baselines in torch) and the command that made the table."""
    table = json.loads(table_path.read_text())
    cells: dict[str, dict[str, Any]] = {}
    for cell in table["cells"]:
        if cell["source"] != source:
            continue
        method = "this generator" if cell["method"] == generator_method else cell["method"]
        cells.setdefault(method, {})[cell["target"]] = {
            "accuracy": cell["accuracy"], "collapse": cell["collapse"],
            "white_box": cell["white_box"]}
    speeds = {("this generator" if s["method"] == generator_method else s["method"]):
              round(s["images_per_second"], 1) for s in table["sets"] if s["source"] == source}
    return {"table": str(table_path), "command": table["command"], "images": table["images"],
            "eps": table["eps"], "clean_accuracy": table["clean_accuracy"],
            "crafting_images_per_second": speeds, "accuracy": cells,
            "reading": "target accuracy on the adversarial test images (lower = stronger); "
                       "collapse: share of images sent to the most common wrong class"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", type=Path, help="the generator's training checkpoint")
    parser.add_argument("model", type=Path, help="its export in the shipped folder (NAME.onnx)")
    parser.add_argument("--table", type=Path, required=True)
    parser.add_argument("--method", help="the generator's row in the table [default: its "
                                          "recipe's label, e.g. aeg-gc-transfer]")
    parser.add_argument("--summary", required=True)
    parser.add_argument("--train-command", required=True)
    parser.add_argument("--default", action="store_true")
    parser.add_argument("--keep-crafting", action="store_true",
                        help="keep the crafting speed of the card already beside the model, "
                             "measured on this very file (its sha256 must match): for a table "
                             "that changed while the file did not")
    args = parser.parse_args()
    meta = read_meta(args.checkpoint)
    model = args.model
    history = meta["history"]
    training = {"data": meta["train"]["data"], "split": "fit", "epochs": meta["epoch"],
                "images_seen": round(sum(r["images_per_second"] * r["seconds"] for r in history)),
                "seconds": round(sum(r["seconds"] for r in history), 1),
                "devices": sorted({r["device"] for r in history}), "command": args.train_command,
                "validation": {k: v for k, v in history[-1].items()
                               if k.startswith("val_") or k == "collapse"}}
    card = write_card(model, summary=args.summary, recipe=meta["recipe"], training=training,
                      transfer=transfer_cells(args.table, meta["sources"][0],
                                              args.method or generator_label(meta["recipe"])),
                      crafting=(kept_crafting(model) if args.keep_crafting
                                else crafting_speed(model, meta["train"]["data"])),
                      default=args.default)
    print(f"{model}: {card.size_bytes / 1e6:.2f} MB, sha256 {card.sha256[:16]}..., "
          f"{card.crafting['images_per_second']:.0f} images/s here")


if __name__ == "__main__":
    main()
