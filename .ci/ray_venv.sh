#!/usr/bin/env bash
# The Ray engine's tests (tests/test_ray_engine.py) in a venv of their own: the base install,
# the `ray` extra and pytest, and no torch. Ray Data with pyarrow and pandas would take the
# main test venv (.venv-ci) past 2 GB, and here the engine runs where torch is not even
# installed. The 3-channel generator the tests perturb with is exported beforehand by the
# calling environment's python, which must have the train extra (as .ci/run's venv does).
#
# The venv (.venv-ray) is kept between runs and rebuilt whenever pyproject.toml or the Python
# version changes; its installer output goes to .venv-ray/install.log, shown only on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-ray
stamp=$( (python3 --version; cat pyproject.toml) | sha256sum | cut -c1-16)
if [ "$(cat "$VENV/.stamp" 2>/dev/null)" != "$stamp" ]; then
    start=$SECONDS
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    if ! "$VENV/bin/python" -m pip install -e ".[ray]" "pytest>=8.0" >"$VENV/install.log" 2>&1; then
        echo "FAIL: installing $VENV" >&2
        tail -n 60 "$VENV/install.log" >&2
        exit 1
    fi
    echo "$stamp" >"$VENV/.stamp"
    echo "built $VENV in $((SECONDS - start)) s ($(du -sm "$VENV" | cut -f1) MB)"
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/agscm-ray.XXXXXX")
trap 'rm -rf "$work"' EXIT
python - "$work/rgb.onnx" <<'PY'
import sys
from pathlib import Path

sys.path.insert(0, "tests")
from runtime_helpers import export_random_generator  # noqa: E402

export_random_generator(Path(sys.argv[1]), 3)
PY
if "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    echo "FAIL: torch is importable in $VENV" >&2
    exit 1
fi
AGSCM_RGB_MODEL="$work/rgb.onnx" "$VENV/bin/python" -m pytest -q -p no:cacheprovider \
    tests/test_ray_engine.py
