#!/usr/bin/env bash
# The GPU path of the torch-free runtime, measured in under 5 minutes on one NVIDIA GPU.
#
# Usage: bash benchmarks/gpu_check.sh G.onnx [IMAGE_DIR]
#   G.onnx     a generator; G.fp16.onnx beside it (if present) is measured too. Make both on
#              any machine with the train extra:
#                python benchmarks/bench_runtime.py --write-model G.onnx
#   IMAGE_DIR  images for the folder run [default: 2,000 CIFAR-10 test JPEGs from
#              $AGSCM_DATA/cifar10-jpeg.tar.gz (AGSCM_DATA defaults to ../shared/data); if
#              that archive is absent, 2,000 generated 32x32 images, and the JSON says so]
#
# It installs this checkout with the `gpu` extra's onnxruntime-gpu (never beside the CPU
# onnxruntime) in a fresh venv. Where no package registry can be reached, it falls back to an
# existing python whose onnxruntime has the CUDAExecutionProvider ($PYTHON, then python3,
# python) and says so in the JSON ("environment"). Then, with --device cuda: array throughput
# (32x32 batch 256, one 1920x1080 image), the same with IO binding (input and output stay on
# the GPU), fp16, and `agscm perturb` folder to folder. Prints one JSON object on stdout;
# progress goes to stderr.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
model=$(realpath "${1:?usage: bash benchmarks/gpu_check.sh G.onnx [IMAGE_DIR]}")
images=${2:-}
data=${AGSCM_DATA:-$repo/../shared/data}
work=$(mktemp -d "${TMPDIR:-/tmp}/agscm-gpu-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
deadline=$((SECONDS + 290))

has_cuda() {
    "$1" -c "import onnxruntime as o, sys; sys.exit('CUDAExecutionProvider' not in o.get_available_providers())" 2>/dev/null
}

python=""
environment=""
echo "installing the gpu extra into a fresh venv ..." >&2
if python3 -m venv "$work/venv" >&2 \
    && timeout 150 "$work/venv/bin/python" -m pip install --quiet --retries 0 --timeout 15 \
        numpy pillow typer rich \
        "onnxruntime-gpu[cuda,cudnn]>=1.19" >&2 \
    && "$work/venv/bin/python" -m pip install --quiet --no-deps "$repo" >&2 \
    && has_cuda "$work/venv/bin/python"; then
    python=$work/venv/bin/python
    environment="fresh venv with onnxruntime-gpu (the gpu extra)"
else
    echo "could not install the gpu extra (no registry?); looking for an existing python" >&2
    for candidate in ${PYTHON:-} python3 python; do
        if command -v "$candidate" >/dev/null && has_cuda "$(command -v "$candidate")"; then
            python=$(command -v "$candidate")
            environment="fallback: existing $python (no registry reachable for a fresh venv)"
            break
        fi
    done
fi
if [ -z "$python" ]; then
    echo '{"error": "no python with the CUDAExecutionProvider, and the gpu extra could not be installed"}'
    exit 1
fi
if ! "$python" -c "import agscm.runtime" 2>/dev/null; then
    export PYTHONPATH=$repo${PYTHONPATH:+:$PYTHONPATH}
fi

if [ -z "$images" ]; then
    images=$work/images
    mkdir -p "$images"
    if [ -f "$data/cifar10-jpeg.tar.gz" ]; then
        tar -xzf "$data/cifar10-jpeg.tar.gz" -C "$images" --wildcards 'test/*/0[0-1]??.jpg'
        image_source="2,000 CIFAR-10 test JPEGs"
    else
        "$python" - "$images" <<'PY'
import sys
from pathlib import Path

import numpy as np
from PIL import Image

rng = np.random.default_rng(0)
for index in range(2000):
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), np.uint8)).save(
        Path(sys.argv[1]) / f"{index:04d}.png")
PY
        image_source="2,000 generated 32x32 noise images (no CIFAR-10 archive here)"
    fi
else
    image_source=$(realpath "$images")
fi

AGSCM_GPU_SECONDS_LEFT=$((deadline - SECONDS)) "$python" - "$model" "$images" "$work" \
    "$environment" "$image_source" <<'PY'
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from agscm.contract import INPUT_NAME, OUTPUT_NAME
from agscm.runtime import Perturber

model, images, work, environment, image_source = sys.argv[1:6]
budget = time.monotonic() + float(os.environ["AGSCM_GPU_SECONDS_LEFT"])
log = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
result = {"environment": environment, "onnxruntime": ort.__version__,
          "providers": ort.get_available_providers(), "model": model, "images": image_source}
try:
    result["gpu"] = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total",
                                    "--format=csv,noheader"], capture_output=True,
                                   text=True).stdout.strip()
except OSError:
    result["gpu"] = "nvidia-smi not found"


def rate(function, items: int, seconds: float = 4.0) -> float:
    """Items per second over about `seconds` after two warm-up calls."""
    function()
    function()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        function()
        count += 1
    return items * count / (time.perf_counter() - start)


rng = np.random.default_rng(0)
batches = {"32x32_batch256": rng.random((256, 3, 32, 32), dtype=np.float32),
           "1080p_batch1": rng.random((1, 3, 1080, 1920), dtype=np.float32)}
variants = {"fp32": Path(model)}
fp16 = Path(model).with_name(f"{Path(model).stem}.fp16{Path(model).suffix}")
if fp16.exists():
    variants["fp16"] = fp16
result["array"] = {}
for precision, path in variants.items():
    perturber = Perturber(path, device="cuda")
    session = perturber.model.session
    for name, batch in batches.items():
        if time.monotonic() > budget - 60:
            result["array"][f"{precision}_{name}"] = "skipped: time budget"
            continue
        log(f"array {precision} {name}")
        row = {"provider": perturber.provider,
               "images_per_second": rate(lambda b=batch, p=perturber: p.perturb_array(b),
                                         len(batch))}
        binding = session.io_binding()  # input and output stay on the GPU
        binding.bind_ortvalue_input(INPUT_NAME, ort.OrtValue.ortvalue_from_numpy(batch, "cuda", 0))
        binding.bind_output(OUTPUT_NAME, "cuda")
        row["io_binding_images_per_second"] = rate(
            lambda b=binding, s=session: s.run_with_iobinding(b), len(batch))
        pixels = batch.shape[0] * batch.shape[2] * batch.shape[3]
        row["megapixels_per_second"] = row["images_per_second"] * pixels / len(batch) / 1e6
        result["array"][f"{precision}_{name}"] = row

result["folder"] = {}
for label, extra in (("default_workers", []), ("workers_0", ["--workers", "0"])):
    if time.monotonic() > budget - 20:
        result["folder"][label] = "skipped: time budget"
        continue
    log(f"folder {label}")
    out = Path(work) / f"out-{label}"
    start = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", "from agscm.cli import main; main()", "perturb",
                          images, str(out), "--model", model, "--device", "cuda", *extra],
                         capture_output=True, text=True,
                         timeout=max(10, budget - time.monotonic()))
    wall = time.perf_counter() - start
    written = sum(1 for _ in out.rglob("*.png"))
    result["folder"][label] = {"exit": run.returncode, "images": written,
                               "wall_seconds": wall, "images_per_second": written / wall,
                               "summary": run.stderr.strip().splitlines()[-1:]}
print(json.dumps(result, indent=1))
PY
