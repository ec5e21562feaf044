#!/usr/bin/env bash
# The torch-free runtime in a fresh venv holding the base install only (DESIGN §5): no torch,
# no onnx; `agscm info` and `agscm perturb` must work there on real images.
#
# Usage: .ci/runtime_venv.sh [G.onnx [IMAGE_DIR]]
#   G.onnx     a generator exported by `agscm export` in the main (training) environment
#              [default: an untrained generator (width 4), saved and put through
#              `agscm export` (with its parity checks on real MNIST) by the current
#              environment's python, which must have the train extra]
#   IMAGE_DIR  a folder of real images [default: 100 CIFAR-10 test JPEGs unpacked from
#              $AGSCM_DATA/cifar10-jpeg.tar.gz, AGSCM_DATA defaulting to ../shared/data]
# PYTHON picks the interpreter for the new venv [default: python3].
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
data=${AGSCM_DATA:-$repo/../shared/data}
work=$(mktemp -d "${TMPDIR:-/tmp}/agscm-runtime-venv.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [ $# -ge 1 ]; then
    model=$(realpath "$1")
else
    model=$work/G.onnx
    python - "$work/G.safetensors" "$data/mnist" <<'PY'
import sys
from pathlib import Path

import torch

from agscm.models.generator import Generator, GeneratorConfig
from agscm.models.generator_checkpoint import save_generator

torch.manual_seed(0)
generator = Generator(GeneratorConfig(channels=1, width=4, residual_blocks=1, eps=0.3))
save_generator(Path(sys.argv[1]), generator.eval(), {
    "dataset": "mnist", "image_size": [28, 28], "sources": [], "lambda": 0.0,
    "train": {"data": sys.argv[2], "note": "untrained: CI smoke test of the runtime"}})
PY
    python -c "from agscm.cli import main; main()" export "$work/G.safetensors" -o "$model"
fi

# Install from a copy of the tracked and new files, so the build leaves nothing in the repo.
mkdir "$work/src"
git -C "$repo" ls-files -z --cached --others --exclude-standard \
    | (cd "$repo" && tar --null --ignore-failed-read -T - -cf -) | tar -xf - -C "$work/src"
"${PYTHON:-python3}" -m venv "$work/venv"
# the base package, no extras; the installer's output is shown only when it fails
if ! "$work/venv/bin/python" -m pip install --disable-pip-version-check "$work/src" \
        >"$work/pip.log" 2>&1; then
    tail -n 40 "$work/pip.log" >&2
    echo "FAIL: the base install failed" >&2
    exit 1
fi
for module in torch onnx; do
    if "$work/venv/bin/python" -c "import $module" 2>/dev/null; then
        echo "FAIL: $module is importable in the base install" >&2
        exit 1
    fi
done
echo "base install has no torch and no onnx"

images=${2:-}
if [ -z "$images" ]; then
    images=$work/images
    mkdir -p "$images"
    tar -xzf "$data/cifar10-jpeg.tar.gz" -C "$images" --wildcards 'test/*/000?.jpg'
fi
images=$(realpath "$images")
expected=$(find "$images" -type f | wc -l)

"$work/venv/bin/agscm" info "$model"
"$work/venv/bin/agscm" perturb "$images" "$work/out" --model "$model"
written=$(find "$work/out" -type f -name '*.png' | wc -l)
if [ "$written" -ne "$expected" ] || [ "$written" -eq 0 ]; then
    echo "FAIL: $written outputs for $expected input images" >&2
    exit 1
fi
echo "runtime venv OK: $written images perturbed without torch"

# `agscm web` from the installed package (its page files are package data), torch-free too.
ort_dist=$repo/web/node_modules/onnxruntime-web/dist
if [ -d "$ort_dist" ]; then
    "$work/venv/bin/agscm" web "$work/site" --model "$model" --ort-dist "$ort_dist"
    for file in index.html app.js pixels.js model.onnx ort/ort.webgpu.min.mjs; do
        if [ ! -s "$work/site/$file" ]; then
            echo "FAIL: agscm web wrote no $file from the base install" >&2
            exit 1
        fi
    done
    echo "agscm web OK: a site built from the base install"
fi
