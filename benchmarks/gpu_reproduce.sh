#!/usr/bin/env bash
# `agscm reproduce cifar10` on one NVIDIA GPU, as run on the H200 lent to the project. Expects, in
# the repository, .gpu/cifar10-jpeg.tar.gz and .gpu/zoo/*.safetensors (the weights-only zoo from
# benchmarks/gpu_zoo.sh). The zoo is measured again on the whole test set (PGD-20), then every
# stage runs with 8 training processes at once. The report, the zoo figures, the trained
# generators (weights only) and the logs land in $OUT, partial ones too if time runs out.
#   OUT=/tmp/out REPRODUCE_SECONDS=380 bash benchmarks/gpu_reproduce.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 AGSCM_CACHE=/tmp/agscm-cache OMP_NUM_THREADS=2
OUT=${OUT:?set OUT}
start=$(date +%s)
mkdir -p ../shared/data runs/zoo
[ -e ../shared/data/cifar10-jpeg.tar.gz ] || cp .gpu/cifar10-jpeg.tar.gz ../shared/data/
cp .gpu/zoo/*.safetensors runs/zoo/
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch; print('torch', torch.__version__)"; } > "$OUT/machine.txt" 2>&1
python3 -c "from agscm.data import load_split; [load_split('../shared/data/cifar10-jpeg.tar.gz', s) for s in ('train', 'test')]"
python3 benchmarks/bench_zoo.py cifar10 --zoo runs/zoo --device cuda --out "$OUT/zoo_cifar10.json" > runs/bench.txt 2>&1
echo "data decoded and zoo measured at $(( $(date +%s) - start )) s" | tee -a "$OUT/machine.txt"
timeout "${REPRODUCE_SECONDS:-380}" python3 -m agscm reproduce cifar10 --device cuda --jobs 8 \
    --out "$OUT" > runs/reproduce.txt 2>&1
echo "reproduce ended (rc $?) at $(( $(date +%s) - start )) s" | tee -a "$OUT/machine.txt"
python3 benchmarks/strip_optimizer.py runs/reproduce/cifar10/generators/*.safetensors \
    runs/reproduce/cifar10/sweep/*.safetensors --out runs/generator-weights >> runs/bench.txt 2>&1
tar -czf "$OUT/generators.tar.gz" -C runs generator-weights 2>/dev/null
tar -czf "$OUT/logs.tar.gz" runs/bench.txt runs/reproduce.txt runs/reproduce/cifar10/logs \
    runs/reproduce/cifar10/generators/*.log.json 2>/dev/null
ls -la "$OUT"; tail -3 runs/reproduce.txt
