"""The runtime path never needs PyTorch (or onnx): proven in subprocesses (DESIGN §5)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from runtime_helpers import REPO, GeneratorFiles, mnist_pngs, run_agscm

# Installed in the main environment but absent from a base install: none may be imported.
TRAINING_ONLY = ("torch", "torchvision", "onnx", "onnxscript", "safetensors")


def test_runtime_modules_import_nothing_from_training(mnist_generator: GeneratorFiles) -> None:
    """With torch installed, importing and using the runtime still must not load it."""
    script = f"""
import importlib, pkgutil, sys
import agscm.cli, agscm.contract, agscm.commands.models, agscm.commands.runtime, agscm.runtime
for module in pkgutil.walk_packages(agscm.runtime.__path__, "agscm.runtime."):
    importlib.import_module(module.name)  # every runtime module, present and future
import numpy as np
from agscm.runtime import Perturber
perturber = Perturber({str(mnist_generator.onnx)!r})
perturber.perturb_array(np.zeros((1, 1, 9, 9), np.float32))
print(sorted(m for m in {TRAINING_ONLY!r} if m in sys.modules))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_perturb_and_info_run_where_torch_cannot_be_imported(
        mnist_generator: GeneratorFiles, mnist_dir: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    for name in ("torch", "onnx"):
        (blocker / name).mkdir(parents=True)
        (blocker / name / "__init__.py").write_text(
            f"raise ImportError('{name} is blocked: the runtime must not need it')\n")
    env = {"PYTHONPATH": str(blocker)}
    check = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True,
                           text=True, env=env, timeout=60)
    assert check.returncode != 0 and "torch is blocked" in check.stderr

    info = run_agscm("info", str(mnist_generator.onnx), env=env)
    assert info.returncode == 0, info.stderr
    assert "tiny-natural" in info.stdout and "CPUExecutionProvider" in info.stdout
    assert not re.search(r"\d\.\d{7,}", info.stdout)  # numbers rounded for people

    mnist_pngs(tmp_path / "in" / "digits", mnist_dir, 5)
    result = run_agscm("perturb", str(tmp_path / "in"), str(tmp_path / "out"), "-m",
                       str(mnist_generator.onnx), env=env)
    assert result.returncode == 0, result.stderr
    assert "5 ok" in result.stderr
    assert len(list((tmp_path / "out" / "digits").glob("*.png"))) == 5


def test_version_and_help_run_where_torch_cannot_be_imported(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker" / "torch"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('torch is blocked')\n")
    env = {"PYTHONPATH": str(blocker.parent)}
    version = run_agscm("--version", env=env)
    assert version.returncode == 0 and version.stdout.startswith("agscm "), version.stderr
    for args in (["--help"], ["perturb", "--help"], ["info", "--help"], ["models", "--help"]):
        shown = run_agscm(*args, env=env)
        assert shown.returncode == 0 and "Usage" in shown.stdout, shown.stderr
