"""Issue 31's cases, each against this checkout: every one must hold (see training_faults.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hostile_cases import Unavailable
from training_faults import QUICK_CASES, SLOW_CASES, FaultEnv, tiny_zoo

AGSCM = [sys.executable, "-m", "agscm"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "AGSCM_THREADS": "1"}


@pytest.fixture(scope="module")
def fault_zoo(tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path) -> Path:
    return tiny_zoo(AGSCM, ENV, mnist_dir, tmp_path_factory.mktemp("fault-zoo"))


def _run(case, fault_zoo: Path, mnist_dir: Path, tmp_path: Path) -> None:
    env = {**ENV, "AGSCM_CACHE": str(tmp_path / "data-cache")}
    try:  # one kill per killed-run case here (seeded); benchmarks/fault_table.py does three
        outcome = case(FaultEnv(AGSCM, tmp_path, mnist_dir, fault_zoo, env, kills=1))
    except Unavailable as exc:
        pytest.skip(str(exc))
    assert outcome.held, outcome.detail


@pytest.mark.parametrize("case", QUICK_CASES, ids=[case.__name__ for case in QUICK_CASES])
def test_case_holds(case, fault_zoo: Path, mnist_dir: Path, tmp_path: Path) -> None:
    _run(case, fault_zoo, mnist_dir, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("case", SLOW_CASES, ids=[case.__name__ for case in SLOW_CASES])
def test_slow_case_holds(case, fault_zoo: Path, mnist_dir: Path, tmp_path: Path) -> None:
    _run(case, fault_zoo, mnist_dir, tmp_path)
