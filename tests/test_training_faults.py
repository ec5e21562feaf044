"""Issue 31's cases, each against this checkout: every one must hold (see training_faults.py)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hostile_cases import Outcome, Unavailable
from training_faults import QUICK_CASES, SLOW_CASES, FaultEnv, tiny_zoo

AGSCM = [sys.executable, "-m", "agscm"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "AGSCM_THREADS": "1"}
Case = Callable[[FaultEnv], Outcome]


@pytest.fixture(scope="module")
def fault_zoo(tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path) -> Path:
    return tiny_zoo(AGSCM, ENV, mnist_dir, tmp_path_factory.mktemp("fault-zoo"))


def _outcome(case: Case, fault_zoo: Path, mnist_dir: Path, work: Path) -> Outcome | Unavailable:
    env = {**ENV, "AGSCM_CACHE": str(work / "data-cache")}
    try:  # one kill per killed-run case here (seeded); benchmarks/fault_table.py does three
        return case(FaultEnv(AGSCM, work, mnist_dir, fault_zoo, env, kills=1))
    except Unavailable as exc:
        return exc


def _assert_held(outcome: Outcome | Unavailable) -> None:
    if isinstance(outcome, Unavailable):
        pytest.skip(str(outcome))
    assert outcome.held, outcome.detail


@pytest.fixture(scope="module")
def quick_outcomes(request: pytest.FixtureRequest, fault_zoo: Path, mnist_dir: Path,
                   tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome | Unavailable]:
    """The selected quick cases, two at a time: their commands run single-threaded, so the
    two cores of CI take two at once and the cases add half the time to the suite."""
    selected = [item.callspec.params["case"] for item in request.session.items
                if item.module is request.module and item.originalname == "test_case_holds"]

    def outcome(case: Case) -> Outcome | Unavailable:
        return _outcome(case, fault_zoo, mnist_dir, tmp_path_factory.mktemp(case.__name__))

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip((case.__name__ for case in selected), pool.map(outcome, selected),
                        strict=True))


@pytest.mark.parametrize("case", QUICK_CASES, ids=[case.__name__ for case in QUICK_CASES])
def test_case_holds(case: Case, quick_outcomes: dict[str, Outcome | Unavailable]) -> None:
    _assert_held(quick_outcomes[case.__name__])


@pytest.mark.slow
@pytest.mark.parametrize("case", SLOW_CASES, ids=[case.__name__ for case in SLOW_CASES])
def test_slow_case_holds(case: Case, fault_zoo: Path, mnist_dir: Path, tmp_path: Path) -> None:
    _assert_held(_outcome(case, fault_zoo, mnist_dir, tmp_path))
