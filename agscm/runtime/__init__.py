"""The torch-free runtime: apply an exported generator with numpy, onnxruntime and Pillow only.

Nothing under `agscm.runtime` may import torch (tests/test_torch_free.py proves it). The
public names load on first use, so the CLI can read small constants (agscm.runtime.tiles)
without paying for onnxruntime and Pillow at start-up.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agscm.runtime.folder import FolderOptions, FolderSummary
    from agscm.runtime.manifest import FileRecord
    from agscm.runtime.model import GeneratorModel
    from agscm.runtime.perturber import Perturber

_EXPORTS = {"FolderOptions": "folder", "FolderSummary": "folder", "FileRecord": "manifest",
            "GeneratorModel": "model", "Perturber": "perturber"}
__all__ = ["FileRecord", "FolderOptions", "FolderSummary", "GeneratorModel", "Perturber"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"agscm.runtime.{_EXPORTS[name]}"), name)
