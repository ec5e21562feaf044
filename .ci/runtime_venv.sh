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

# The shipped generators, from the installed package: `agscm perturb` with no --model takes the
# one that fits the folder (grey digits; colour JPEGs), names it, and keeps its eps.
"$work/venv/bin/agscm" models
digits=$work/digits
python - "$data/mnist" "$digits" <<'PY'
import sys
from pathlib import Path

from PIL import Image

from agscm.data import load_split

folder = Path(sys.argv[2])
folder.mkdir()
test = load_split(sys.argv[1], "test")
for index in range(20):
    Image.fromarray(test.images[index, 0]).save(folder / f"{index:02d}.png")
PY
check_shipped() {  # IN, OUT, channels: perturb with no --model, then check the line and eps
    if ! "$work/venv/bin/python" -c "
import sys
from agscm.runtime.pretrained import Shelf
sys.exit(not any(card.channels == $3 for card in Shelf.open().cards))"; then
        echo "no shipped $3-channel generator: skipped the no --model run on $1"
        return
    fi
    "$work/venv/bin/agscm" perturb "$1" "$2" 2>&1 | tee "$work/said.txt"
    grep -q "using shipped generator" "$work/said.txt" \
        || { echo "FAIL: perturb with no --model did not name its generator" >&2; exit 1; }
    "$work/venv/bin/python" - "$1" "$2" "$3" <<'PY'
import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from agscm.runtime.pretrained import Shelf

source, out, channels = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
card = Shelf.open().default_for(channels)
limit = math.floor(card.eps * 255 + 1e-6)
inputs = sorted(p for p in source.rglob("*") if p.is_file())
worst = 0
for path in inputs:
    output = out / path.relative_to(source).with_name(path.name + ".png")
    adversarial = Image.open(output)
    clean = np.asarray(Image.open(path).convert(adversarial.mode), dtype=np.int16)
    worst = max(worst, int(np.abs(np.asarray(adversarial, dtype=np.int16) - clean).max()))
assert inputs and worst <= limit, (len(inputs), worst, limit)
print(f"{card.name}: {len(inputs)} outputs within eps (largest change {worst} of {limit} "
      "8-bit steps)")
PY
}
check_shipped "$digits" "$work/out-grey" 1
check_shipped "$images" "$work/out-colour" 3

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
