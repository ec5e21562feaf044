"""Shared fixtures. Real data comes from one setting: $AGSCM_DATA (default ../shared/data)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA_ROOT = Path(os.environ.get("AGSCM_DATA", REPO.parent / "shared" / "data"))


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not found at {path} (set AGSCM_DATA to the shared data folder)")
    return path


@pytest.fixture(scope="session")
def data_root() -> Path:
    return _require(DATA_ROOT)


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    return _require(DATA_ROOT / "mnist")


@pytest.fixture(scope="session")
def cifar_archive() -> Path:
    return _require(DATA_ROOT / "cifar10-jpeg.tar.gz")
