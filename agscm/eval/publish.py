"""Put a trained classifier into a catalogued zoo: weights only, measured as committed.

`publish_model` strips the optimizer state, stores the weights in half precision (BatchNorm's
counters stay integers), measures the stored copy (loaded back into a float32 model) on the whole
test set, and adds the catalog entry with the file's size and sha256. What the catalog says a
model scores is therefore what the committed bytes score. A model that is already catalogued is
replaced only with `replace_reason`, which the entry keeps (git keeps every earlier version).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from agscm.atomic import atomic_path
from agscm.data import load_split
from agscm.digest import file_digest
from agscm.errors import AgscmError
from agscm.eval.robustness import measure_robustness, spec_for
from agscm.models.catalog import SUFFIX, is_catalogued, read_catalog, write_catalog
from agscm.models.checkpoint import load_checkpoint, save_checkpoint, without_optimizer
from agscm.models.registry import load_classifier
from agscm.provenance import source_commit
from agscm.train.precision import resolve_precision
from agscm.train.zoo import train_command

PRECISIONS = {"float16": torch.float16, "float32": torch.float32}


def _epoch_precision(row: dict[str, Any]) -> str:
    """The precision an epoch's steps ran in; epochs from before it was recorded ran in the
    default of their device (bf16 on CUDA, fp32 on CPU)."""
    return row.get("precision") or resolve_precision(None, row.get("device", "cpu"))


def _training_command(train: dict[str, Any], name: str, history: list[dict[str, Any]]) -> str:
    """The `agscm zoo train` line, with `--precision` where every epoch ran in one precision
    other than its device's default (bf16 on a CPU), so that the line trains the same way."""
    command = train_command(train, name)
    ran = {_epoch_precision(row) for row in history}
    defaults = {resolve_precision(None, row.get("device", "cpu")) for row in history}
    if len(ran) == 1 and ran != defaults:
        command += f" --precision {ran.pop()}"
    return command


def _commits(history: list[dict[str, Any]]) -> str | None:
    """The commit(s) the epochs were trained at, as the checkpoint recorded them."""
    commits = list(dict.fromkeys(row["commit"] for row in history if row.get("commit")))
    return ", ".join(commits) or None


def publish_model(checkpoint: Path, zoo: Path, *, precision: str = "float16",
                  data: str | None = None, commit: str | None = None,
                  replace_reason: str | None = None, limit: int | None = None,
                  device: str = "cpu") -> dict[str, Any]:
    """Add the finished classifier at `checkpoint` to the catalogued `zoo`; returns its entry.
    `limit` measures on the first N test images only (the entry says how many)."""
    if precision not in PRECISIONS:
        raise AgscmError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    tensors, meta = load_checkpoint(checkpoint)
    if meta.get("kind") != "classifier":
        raise AgscmError(f"{checkpoint}: not a classifier checkpoint (kind {meta.get('kind')!r})")
    if meta["epoch"] < meta["train"]["epochs"]:
        raise AgscmError(f"{checkpoint}: unfinished ({meta['epoch']}/{meta['train']['epochs']} "
                         "epochs); finish it with the same agscm zoo train command first")
    name = checkpoint.name.removesuffix(SUFFIX)
    models = read_catalog(zoo) if is_catalogued(zoo) else {}
    if name in models and not replace_reason:
        raise AgscmError(f"{name!r} is already in {zoo}; say why it is replaced "
                         "(--replace-reason) to publish a new version")
    weights, meta = without_optimizer(tensors, meta, PRECISIONS[precision])
    meta["precision"] = precision
    with tempfile.TemporaryDirectory() as folder:
        staged = Path(folder) / checkpoint.name
        save_checkpoint(staged, weights, meta)
        model, _ = load_classifier(staged, device=device)
        test_data = data or meta["train"]["data"]
        test = load_split(test_data, "test").subset(limit)
        measured = measure_robustness(model, test, spec_for(test_data, test.channels), device)
        zoo.mkdir(parents=True, exist_ok=True)
        with atomic_path(zoo / checkpoint.name) as temp:
            shutil.copyfile(staged, temp)
    path = zoo / checkpoint.name
    entry = {
        "file": path.name, "kind": meta["train"]["kind"],
        "architecture": meta["model"]["arch"], "width": meta["model"]["width"],
        "parameters": sum(p.numel() for p in model.parameters()),
        "dataset": Path(test_data).name, "classes": len(meta["classes"]),
        "training": {"command": _training_command(meta["train"], name, meta["history"]),
                     "commit": commit or _commits(meta["history"]) or source_commit() or "unknown",
                     "epochs": meta["epoch"], "devices": sorted({r.get("device", "?") for r
                                                                 in meta["history"]}),
                     "precisions": sorted({_epoch_precision(row) for row in meta["history"]}),
                     "seconds": round(sum(r["seconds"] for r in meta["history"]), 1),
                     "torch": torch.__version__},
        "test": {"images": measured.images, "clean_acc": measured.clean_acc,
                 "noise_acc": measured.noise_acc, "attack": measured.attack,
                 "attack_acc": measured.attack_acc, "device": str(device)},
        "precision": precision, "size_bytes": path.stat().st_size, "sha256": file_digest(path),
    }
    if replace_reason:
        entry["replaced"] = replace_reason
    write_catalog(zoo, {**models, name: entry})
    return entry

