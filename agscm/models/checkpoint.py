"""Checkpoints as safetensors plus a JSON header: loading never executes code.

A checkpoint holds named tensors (model weights, optionally optimizer state under `optim.`)
and a JSON dict (kind, config, epoch, history). Writes are atomic: a crash never leaves a
half-written file under the final name.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, fields
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from agscm.atomic import atomic_path
from agscm.errors import AgscmError

_META_KEY = "agscm"


def save_checkpoint(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write tensors and meta to `path` atomically (temp file in the same folder, then rename):
    a failed write (a full disk) is one line, and the file already at `path` stays as it was."""
    contiguous = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as temp:
            save_file(contiguous, str(temp), metadata={_META_KEY: json.dumps(meta)})
    except (SafetensorError, OSError) as exc:
        raise AgscmError(f"{path}: cannot save the checkpoint ({exc}); the previous one, if "
                         "any, is unchanged") from None


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint; a missing, corrupt or foreign file is a one-line AgscmError."""
    if not path.is_file():
        raise AgscmError(f"{path}: checkpoint not found")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise AgscmError(f"{path}: not a readable agscm checkpoint ({exc})") from None
    return tensors, read_meta(path)


def read_meta(path: Path) -> dict[str, Any]:
    """A checkpoint's JSON dict alone, without reading its tensors (reports read many)."""
    if not path.is_file():
        raise AgscmError(f"{path}: checkpoint not found")
    try:
        with open(path, "rb") as handle:
            header_size = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(header_size))
        return json.loads(header.get("__metadata__", {})[_META_KEY])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AgscmError(f"{path}: not a readable agscm checkpoint ({exc})") from None


def split_prefix(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors under `prefix.`, with the prefix removed."""
    start = len(prefix) + 1
    return {name[start:]: t for name, t in tensors.items() if name.startswith(prefix + ".")}


def without_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any],
                      dtype: torch.dtype | None = None
                      ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A finished model as it travels or is published: the tensors and metadata without the
    optimizer state (2-3x smaller; only training further needs it), floating tensors cast to
    `dtype` when given."""
    weights = {name: tensor.to(dtype) if dtype is not None and tensor.is_floating_point()
               else tensor for name, tensor in tensors.items() if not name.startswith("optim.")}
    return weights, {key: value for key, value in meta.items() if key != "optimizer"}


def optimizer_to_tensors(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Flatten an optimizer state_dict into tensors and a JSON-able rest."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entries in state["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def optimizer_from_tensors(tensors: dict[str, torch.Tensor], rest: dict[str, Any]) -> dict[str, Any]:
    """Inverse of optimizer_to_tensors: an optimizer state_dict ready for load_state_dict."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in split_prefix(tensors, "optim").items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    for index, entries in rest["scalars"].items():
        state.setdefault(int(index), {}).update(entries)
    return {"state": state, "param_groups": rest["param_groups"]}


RESUMABLE_CHANGES = ("epochs", "out", "device", "precision", "monitors")
PATH_SETTINGS = ("data", "zoo_dir")  # spelt relative or absolute, they name the same files


def require_same_config(path: Path, saved: dict[str, Any], wanted: Any,
                        proven_elsewhere: tuple[str, ...] = ()) -> None:
    """Refuse to resume `path` under a different config. Only what does not change what is
    trained may differ: the epoch count may grow, the models watched on the validation split
    may change, a copy may resume at another path, on another device or in another precision
    (a run begun in bf16 on a lent GPU goes on in fp32 on the CPU), and the data or zoo folder
    may be spelt another way if, from here, both spellings lead to the same place.

    `wanted` is the config dataclass; a field newer than the file counts as having been at
    its default there, so files from before a setting existed still resume. `proven_elsewhere`
    names settings the caller checks by content instead (a generator's zoo folder, when the
    file records its sources' sha256), so they may differ in any way."""
    defaults = {f.name: f.default for f in fields(wanted) if f.default is not MISSING}
    saved = {**defaults, **saved}
    changed = sorted(key for key, value in asdict(wanted).items()
                     if key not in RESUMABLE_CHANGES + proven_elsewhere
                     and not _same_setting(key, saved.get(key), value))
    if changed:
        raise AgscmError(f"{path}: exists with a different config ({', '.join(changed)}); "
                         "delete it or choose another name")


def _same_setting(key: str, saved: Any, wanted: Any) -> bool:
    if saved == wanted:
        return True
    return (key in PATH_SETTINGS and isinstance(saved, str) and isinstance(wanted, str)
            and Path(saved).resolve() == Path(wanted).resolve())
