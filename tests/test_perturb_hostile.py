"""Issue 12's cases, each against this checkout: every one must hold (see hostile_cases.py)."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest
from hostile_cases import (
    CASES,
    CaseEnv,
    Unavailable,
    extract_jpegs,
    killed_run_manifest_matches_outputs,
    make_models,
)

AGSCM = [sys.executable, "-c", "from agscm.cli import main; main()"]


@pytest.fixture(scope="module")
def hostile_assets(tmp_path_factory: pytest.TempPathFactory, cifar_archive: Path):
    folder = tmp_path_factory.mktemp("hostile-assets")
    jpegs = extract_jpegs(cifar_archive, folder / "jpegs")
    return make_models(folder), jpegs, folder / "jpegs" / "test"


@pytest.mark.parametrize("case", CASES, ids=[case.__name__ for case in CASES])
def test_case_holds(case, hostile_assets, tmp_path: Path) -> None:
    models, jpegs, root = hostile_assets
    try:
        outcome = case(CaseEnv(AGSCM, tmp_path, models, jpegs, root))
    except Unavailable as exc:
        pytest.skip(str(exc))
    assert outcome.held, outcome.detail


@pytest.mark.parametrize("seed", range(5))  # slow: through `hostile_assets`
def test_after_a_kill_at_any_moment_the_ok_records_are_the_outputs(seed: int, hostile_assets,
                                                                   tmp_path: Path) -> None:
    """The property behind case `killed_run_manifest_matches_outputs`, at five random moments:
    right after the kill no ok record lacks its output; after a rerun the ok records and the
    outputs match one to one."""
    models, jpegs, root = hostile_assets
    random.seed(seed)
    outcome = killed_run_manifest_matches_outputs(CaseEnv(AGSCM, tmp_path, models, jpegs, root),
                                                  rounds=1)
    assert outcome.held, outcome.detail
