"""The Grad-CAM test oracle (grad-cam), importable beside the CPU torch build.

The test oracles grad-cam and torchattacks declare torchvision, whose PyPI wheels are built
against the CUDA torch: beside the CPU build `import torchvision` fails ("operator
torchvision::nms does not exist"), and installing it pulls the multi-GB CUDA torch. So the tests
install both oracles with `--no-deps` (tests/requirements-oracles.txt; the rest of what they
import is in the `dev` extra). torchattacks never imports torchvision, so the tests import it
directly. grad-cam imports it at module level only for code these tests never run (image
preprocessing transforms, SESS's resize, a detection target's `box_iou`): while grad-cam imports,
and only when torchvision is absent, `torchvision` and its submodules are placeholders whose
names raise when called, so a grad-cam path that really needs torchvision fails loudly. The
placeholders leave `sys.modules` afterwards: nothing else sees a torchvision.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any


class _Absent(ModuleType):
    """A torchvision module whose every attribute is a callable that raises when called."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        qualified = f"{self.__name__}.{name}"

        def absent(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError(f"{qualified} was called, but torchvision is not installed here "
                               "(see tests/oracles.py)")

        return absent


class _AbsentFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves `torchvision` and any of its submodules as `_Absent` packages."""

    def find_spec(self, name: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if name != "torchvision" and not name.startswith("torchvision."):
            return None
        return importlib.machinery.ModuleSpec(name, self, is_package=True)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return _Absent(spec.name)

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: every attribute is made on demand."""


@contextmanager
def _torchvision_placeholders() -> Iterator[None]:
    if importlib.util.find_spec("torchvision") is not None:
        yield
        return
    finder = _AbsentFinder()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]


with _torchvision_placeholders():
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.image import scale_cam_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

OracleGradCAM = pytorch_grad_cam.GradCAM

__all__ = ["ClassifierOutputTarget", "OracleGradCAM", "scale_cam_image"]
