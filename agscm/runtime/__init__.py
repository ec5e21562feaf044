"""The torch-free runtime: apply an exported generator with numpy, onnxruntime and Pillow only.

Nothing under `agscm.runtime` may import torch (tests/test_torch_free.py proves it). The names
below load on first use, so the decode/encode worker processes (agscm.runtime.workers) never
load onnxruntime.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agscm.runtime.folder import FolderOptions, FolderSummary
    from agscm.runtime.manifest import FileRecord
    from agscm.runtime.model import GeneratorModel
    from agscm.runtime.perturber import Perturber

_HOMES = {"FileRecord": "manifest", "FolderOptions": "folder", "FolderSummary": "folder",
          "GeneratorModel": "model", "Perturber": "perturber"}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'agscm.runtime' has no attribute {name!r}")
    return getattr(importlib.import_module(f"agscm.runtime.{_HOMES[name]}"), name)
