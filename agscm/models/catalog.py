"""The committed zoo's catalog: one JSON file that names every weight file beside it.

A zoo folder with a `catalog.json` is *catalogued*: each entry records how its model was made
(command, commit), what it measured on the whole test set, and the file's size and sha256.
Loading a model from such a folder checks the file against its entry first, so a weight file
that was changed, damaged or swapped is refused with one line instead of silently attacked.
A catalogued folder holds nothing else: a file without an entry or an entry without a file is
an error too. Reading the catalog needs no torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agscm.atomic import write_json
from agscm.digest import file_digest
from agscm.errors import AgscmError

CATALOG_NAME = "catalog.json"
SUFFIX = ".safetensors"
FORMAT = 1


def is_catalogued(zoo: Path) -> bool:
    return (zoo / CATALOG_NAME).is_file()


def read_catalog(zoo: Path) -> dict[str, dict[str, Any]]:
    """name -> entry, in the catalog's order; a malformed catalog is one line."""
    path = zoo / CATALOG_NAME
    try:
        document = json.loads(path.read_text())
        models = document["models"]
        if document.get("format") != FORMAT or not isinstance(models, dict):
            raise ValueError(f"expected format {FORMAT} with a 'models' object")
        for name, entry in models.items():
            if not isinstance(entry, dict) or entry.get("file") != f"{name}{SUFFIX}":
                raise ValueError(f"entry {name!r} must name its file {name}{SUFFIX}")
    except FileNotFoundError:
        raise AgscmError(f"{path}: catalog not found") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AgscmError(f"{path}: not a readable zoo catalog ({exc})") from None
    return models


def catalog_entry(zoo: Path, name: str) -> dict[str, Any]:
    """The entry of `name`, after checking its file's size and sha256 against it."""
    models = read_catalog(zoo)
    if name not in models:
        raise AgscmError(f"no model {name!r} in the catalog {zoo / CATALOG_NAME} (known: "
                         f"{', '.join(models) or 'none'})")
    verify_file(zoo, name, models[name])
    return models[name]


def verify_file(zoo: Path, name: str, entry: dict[str, Any]) -> None:
    """Refuse a missing file or one whose bytes are not the catalogued ones."""
    path = zoo / entry["file"]
    if not path.is_file():
        raise AgscmError(f"{path}: listed in {CATALOG_NAME} as {name!r} but the file is missing")
    found = file_digest(path)
    if found != entry.get("sha256"):
        raise AgscmError(f"{path}: sha256 {found[:16]}... does not match the catalog's "
                         f"{str(entry.get('sha256'))[:16]}... (changed or damaged; restore it, "
                         "e.g. with git checkout)")


def verify_catalog(zoo: Path) -> dict[str, dict[str, Any]]:
    """Every entry's file checked, and no weight file left without an entry."""
    models = read_catalog(zoo)
    for name, entry in models.items():
        verify_file(zoo, name, entry)
    listed = {entry["file"] for entry in models.values()}
    strays = sorted(p.name for p in zoo.glob(f"*{SUFFIX}") if p.name not in listed)
    if strays:
        raise AgscmError(f"{zoo / strays[0]}: a weight file without an entry in {CATALOG_NAME} "
                         "(add it with agscm zoo publish, or remove it)")
    return models


def write_catalog(zoo: Path, models: dict[str, dict[str, Any]]) -> None:
    """Rewrite the catalog atomically, entries sorted by name so diffs stay small."""
    write_json(zoo / CATALOG_NAME, {"format": FORMAT,
                                    "models": {name: models[name] for name in sorted(models)}})
