"""Shared fixtures. Real data comes from one setting: $AGSCM_DATA (default ../shared/data)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA_ROOT = Path(os.environ.get("AGSCM_DATA", REPO.parent / "shared" / "data"))


# Fixtures that train a model, export one to ONNX or decode the CIFAR-10 archive: every test
# that needs one is marked `slow`, as are the tests that do such work themselves, so that
# `python -m pytest -m "not slow"` is an inner loop of under a minute (CI runs everything).
SLOW_FIXTURES = ("tiny_zoo", "mnist_generator", "rgb_model", "grey_model", "ray_model",
                 "cifar_test", "trained_source", "demo_run", "hostile_assets")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(name in getattr(item, "fixturenames", ()) for name in SLOW_FIXTURES):
            item.add_marker(pytest.mark.slow)


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not found at {path} (set AGSCM_DATA to the shared data folder)")
    return path


@pytest.fixture(scope="session", autouse=True)
def single_torch_thread() -> Iterator[None]:
    """Tests use tiny models, which run faster on one thread than on two competing ones."""
    try:
        import torch
    except ImportError:  # the torch-free runtime tests need no setting
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def data_root() -> Path:
    return _require(DATA_ROOT)


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    return _require(DATA_ROOT / "mnist")


@pytest.fixture(scope="session")
def cifar_archive() -> Path:
    return _require(DATA_ROOT / "cifar10-jpeg.tar.gz")


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory, mnist_dir) -> Path:
    """A zoo folder with `tiny-natural`: the MNIST CNN after two epochs on 3,000 real digits."""
    from agscm.train.zoo import ZooConfig, train_classifier

    zoo = tmp_path_factory.mktemp("zoo")
    train_classifier(ZooConfig(data=str(mnist_dir), kind="natural", epochs=2, batch_size=64,
                                     train_limit=3000),
                     zoo / "tiny-natural.safetensors", test_limit=500)
    return zoo


@pytest.fixture(scope="session")
def rgb_model(tmp_path_factory) -> Path:
    """An untrained 3-channel L-inf generator exported to ONNX (no data needed)."""
    from runtime_helpers import export_random_generator

    return export_random_generator(tmp_path_factory.mktemp("rgb") / "rgb.onnx", 3)


@pytest.fixture(scope="session")
def grey_model(tmp_path_factory) -> Path:
    """An untrained 1-channel L-inf generator at MNIST's eps 0.3, exported to ONNX."""
    from runtime_helpers import export_random_generator

    return export_random_generator(tmp_path_factory.mktemp("grey") / "grey.onnx", 1, eps=0.3)


@pytest.fixture(scope="session")
def mnist_generator(tmp_path_factory, mnist_dir, tiny_zoo):
    """A tiny MNIST generator trained against `tiny-natural`, and its ONNX export."""
    from runtime_helpers import build_mnist_generator

    return build_mnist_generator(tmp_path_factory.mktemp("generator"), mnist_dir, tiny_zoo)
