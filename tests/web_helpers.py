"""Helpers for the `agscm web` tests: what they need from outside Python, found or refused.

Locally, a missing Chromium, Playwright or onnxruntime-web install skips those tests with the
reason; CI sets AGSCM_REQUIRE_WEB=1 (.ci/run installs all three), where a missing one fails.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REQUIRE_ENV = "AGSCM_REQUIRE_WEB"


def unavailable(reason: str) -> None:
    """Skip with `reason`, or fail where CI promised the tool is installed."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} (and {REQUIRE_ENV}=1 says it must be there)")
    pytest.skip(reason)


def ort_dist() -> Path:
    """The pinned onnxruntime-web files, as `agscm web` finds them."""
    from agscm.errors import AgscmError
    from agscm.web import locate_ort_dist

    try:
        return locate_ort_dist()
    except AgscmError as exc:
        unavailable(f"onnxruntime-web files not installed: {exc}")
        raise  # unreachable: unavailable() always raises


def chromium_executable() -> str:
    """Debian's Chromium ($AGSCM_CHROMIUM, else `chromium` on PATH); Playwright downloads none."""
    path = os.environ.get("AGSCM_CHROMIUM") or shutil.which("chromium")
    if not path or not Path(path).is_file():
        unavailable(f"Chromium not found ({path or 'no chromium on PATH'}; apt-get install "
                    "chromium, or set AGSCM_CHROMIUM)")
    return str(path)
