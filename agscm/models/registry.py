"""Find zoo models by name (`mnist-natural`) or path, and load them ready for attack."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

import torch
from torch import nn

from agscm.errors import AgscmError
from agscm.models.catalog import SUFFIX, catalog_entry, is_catalogued, verify_catalog
from agscm.models.checkpoint import load_checkpoint, split_prefix
from agscm.models.classifiers import ClassifierConfig, build_classifier

COMMITTED_ZOO = Path(__file__).resolve().parents[2] / "zoo"  # in a checkout of the repository


def default_zoo_dir() -> Path:
    """`$AGSCM_ZOO`, else the repository's committed zoo (a checkout), else ~/.cache/agscm/zoo."""
    if "AGSCM_ZOO" in os.environ:
        return Path(os.environ["AGSCM_ZOO"])
    if is_catalogued(COMMITTED_ZOO):
        return COMMITTED_ZOO
    return Path.home() / ".cache" / "agscm" / "zoo"


def zoo_train_command(name: str, zoo: Path) -> str:
    """The `agscm zoo train` line that makes model `name` (DATA left for the user)."""
    kind = name.rpartition("-")[2]
    kind_option = f" --kind {kind}" if kind in ("adv", "secret") else ""
    return f"agscm zoo train DATA{kind_option} --name {shlex.quote(name)} --zoo {shlex.quote(str(zoo))}"


def resolve_model_path(name_or_path: str | Path, zoo_dir: Path | None = None) -> Path:
    """A path to an existing checkpoint, or `<zoo_dir>/<name>.safetensors`. A file in a
    catalogued zoo is checked against its catalog entry (sha256) first."""
    candidate = Path(name_or_path)
    if candidate.suffix == SUFFIX or candidate.is_file():
        if not candidate.is_file():
            raise AgscmError(f"{candidate}: checkpoint not found")
        if is_catalogued(candidate.parent):
            catalog_entry(candidate.parent, candidate.name.removesuffix(SUFFIX))
        return candidate
    zoo = zoo_dir or default_zoo_dir()
    path = zoo / f"{name_or_path}{SUFFIX}"
    if is_catalogued(zoo):
        catalog_entry(zoo, str(name_or_path))
        return path
    if not path.is_file():
        known = ", ".join(sorted(p.name[: -len(SUFFIX)] for p in zoo.glob(f"*{SUFFIX}"))) or "none"
        raise AgscmError(f"no model {str(name_or_path)!r} in {zoo} (known: {known}); make it "
                         f"with: {zoo_train_command(str(name_or_path), zoo)}")
    return path


def config_from_meta(meta: dict[str, Any]) -> ClassifierConfig:
    model = dict(meta["model"])
    model["image_size"] = tuple(model["image_size"])
    return ClassifierConfig(**model)


def load_classifier(name_or_path: str | Path, zoo_dir: Path | None = None,
                    device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a zoo classifier in eval mode with frozen weights; returns (model, checkpoint meta)."""
    path = resolve_model_path(name_or_path, zoo_dir)
    tensors, meta = load_checkpoint(path)
    if meta.get("kind") != "classifier":
        raise AgscmError(f"{path}: not a classifier checkpoint (kind {meta.get('kind')!r})")
    model = build_classifier(config_from_meta(meta))
    try:
        model.load_state_dict(split_prefix(tensors, "model"))
    except RuntimeError as exc:
        raise AgscmError(f"{path}: weights do not fit the saved config ({exc})") from None
    model.to(device).eval().requires_grad_(False)
    meta["path"] = str(path)
    meta.setdefault("name", path.name[: -len(SUFFIX)])
    return model, meta


def list_models(zoo_dir: Path | None = None) -> list[dict[str, Any]]:
    """One summary row per checkpoint in the zoo folder."""
    zoo = zoo_dir or default_zoo_dir()
    if is_catalogued(zoo):
        return [catalog_row(name, entry) for name, entry in verify_catalog(zoo).items()]
    rows = []
    for path in sorted(zoo.glob(f"*{SUFFIX}")):
        try:
            _, meta = load_checkpoint(path)
        except AgscmError:
            rows.append({"name": path.name[: -len(SUFFIX)], "status": "unreadable"})
            continue
        if meta.get("kind") != "classifier":
            continue
        last = (meta.get("history") or [{}])[-1]
        rows.append({
            "name": path.name[: -len(SUFFIX)],
            "zoo_kind": meta["train"]["kind"],
            "arch": meta["model"]["arch"],
            "data": meta["train"]["data"],
            "epochs": f"{meta['epoch']}/{meta['train']['epochs']}",
            "test_acc": last.get("test_acc"),
            "status": "done" if meta["epoch"] >= meta["train"]["epochs"] else "partial",
        })
    return rows



def catalog_row(name: str, entry: dict[str, Any]) -> dict[str, Any]:
    """A catalogued model as a `list_models` row, with the catalog's measurements."""
    test = entry["test"]
    return {"name": name, "zoo_kind": entry["kind"], "arch": entry["architecture"],
            "data": entry["dataset"], "epochs": str(entry["training"]["epochs"]),
            "test_acc": test["clean_acc"], "noise_acc": test["noise_acc"],
            "attack_acc": test["attack_acc"], "attack": test["attack"], "images": test["images"],
            "size_mb": entry["size_bytes"] / 1e6,
            "sha256": entry["sha256"], "commit": entry["training"]["commit"],
            "status": "catalogued"}
