"""The torch-free runtime: apply an exported generator with numpy, onnxruntime and Pillow only.

Nothing under `agscm.runtime` may import torch (tests/test_torch_free.py proves it).
"""

from agscm.runtime.folder import FolderOptions, FolderSummary
from agscm.runtime.manifest import FileRecord
from agscm.runtime.model import GeneratorModel
from agscm.runtime.perturber import Perturber

__all__ = ["FileRecord", "FolderOptions", "FolderSummary", "GeneratorModel", "Perturber"]
