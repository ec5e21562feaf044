#!/usr/bin/env bash
# `agscm reproduce cifar10` on one NVIDIA GPU. ZOO=zoo measures the committed zoo as it is
# (every model of the spec must be catalogued there, or the run stops in one line). Otherwise
# (ZOO unset: runs/zoo) a zoo brought along in .gpu/zoo/*.safetensors (weights only, from
# benchmarks/gpu_zoo.sh) is used as it is; without one, the reproduction's first stage trains
# it (the six models took 266 s side by side on the H200). Every stage runs
# with 8 processes at once and resumes from runs/, so when SCRIPT_SECONDS runs out (a device
# call may last 600 s) the same command on the same warm machine goes on where it stopped.
# The report, the table so far (table/), the trained generators (weights only) and the logs
# land in $OUT, partial ones too; the zoo's figures follow once the reproduction is done.
# Data: ../shared/data, or .gpu/cifar10-jpeg.tar.gz carried into the repository.
#   OUT=/tmp/out SCRIPT_SECONDS=560 bash benchmarks/gpu_reproduce.sh
# With the device tool (../shared does not travel): `mkdir -p .gpu && cp
# ../shared/data/cifar10-jpeg.tar.gz .gpu/ && echo /.gpu/ >> .git/info/exclude`, then run
# `OUT=$OUT bash benchmarks/gpu_reproduce.sh` with carry [".gpu"], and again to go on.
# DEVICE and REPRODUCE_FLAGS exist for a dry run of this script on a CPU:
#   OUT=/tmp/out DEVICE=cpu REPRODUCE_FLAGS=--quick bash benchmarks/gpu_reproduce.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 AGSCM_CACHE=$PWD/runs/cache OMP_NUM_THREADS=2
OUT=${OUT:?set OUT}
DEVICE=${DEVICE:-cuda}
start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }
mkdir -p ../shared/data runs/zoo
[ -e ../shared/data/cifar10-jpeg.tar.gz ] || cp .gpu/cifar10-jpeg.tar.gz ../shared/data/
zoo_flag=()
if [ -n "${ZOO:-}" ]; then zoo_flag=(--zoo "$ZOO"); echo "the zoo: $ZOO as it is" | tee -a runs/bench.txt
elif compgen -G ".gpu/zoo/*.safetensors" > /dev/null; then cp -n .gpu/zoo/*.safetensors runs/zoo/
else echo "no .gpu/zoo: stage 1 trains the zoo" | tee -a runs/bench.txt; fi
{ if [ "$DEVICE" = cuda ]; then nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; fi
  python3 -c "import torch; print('torch', torch.__version__)"; } > "$OUT/machine.txt" 2>&1
python3 -c "from agscm.data import load_split; [load_split('../shared/data/cifar10-jpeg.tar.gz', s) for s in ('train', 'test')]"
echo "data decoded at $(elapsed) s" | tee -a "$OUT/machine.txt"
left() { echo $(( ${SCRIPT_SECONDS:-560} - $(elapsed) )); }
# keep 30 s for packing what there is
timeout $(( $(left) - 30 )) python3 -m agscm reproduce cifar10 \
    "${zoo_flag[@]}" --device "$DEVICE" --jobs 8 ${REPRODUCE_FLAGS:-} --out "$OUT" \
    >> runs/reproduce.txt 2>&1
reproduced=$?
echo "reproduce ended (rc $reproduced) at $(elapsed) s" | tee -a "$OUT/machine.txt"
python3 benchmarks/strip_optimizer.py runs/reproduce/cifar10*/generators/*.safetensors \
    runs/reproduce/cifar10*/sweep/*.safetensors --out runs/generator-weights >> runs/bench.txt 2>&1
mkdir -p "$OUT/table" && cp runs/reproduce/cifar10*/table/transfer.* "$OUT/table/" 2>/dev/null
tar -czf "$OUT/generators.tar.gz" -C runs generator-weights 2>/dev/null
tar -czf "$OUT/logs.tar.gz" runs/bench.txt runs/reproduce.txt runs/reproduce/cifar10*/logs \
    runs/reproduce/cifar10*/generators/*.log.json 2>/dev/null
echo "packed at $(elapsed) s" | tee -a "$OUT/machine.txt"
# the zoo's own figures (PGD-20 on the test set) once the reproduction is done, in the time left
if [ "$reproduced" -eq 0 ] && [ -z "${REPRODUCE_FLAGS:-}" ] && [ "$(left)" -gt 1 ]; then
  timeout "$(left)" python3 benchmarks/bench_zoo.py cifar10 --zoo "${ZOO:-runs/zoo}" \
      --device "$DEVICE" --out "$OUT/zoo_cifar10.json" >> runs/bench.txt 2>&1
  echo "zoo measured (rc $?) at $(elapsed) s" | tee -a "$OUT/machine.txt"
fi
ls -la "$OUT"; tail -3 runs/reproduce.txt
