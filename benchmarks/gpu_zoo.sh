#!/usr/bin/env bash
# The CIFAR-10 zoo (and MNIST's non-MadryCNN targets) on one NVIDIA GPU, in one go, as run on the
# H200 lent to the project: train every model of the specs side by side, measure them on the
# whole test set, and publish each finished model into a copy of the committed zoo (weights only,
# half precision, measured as stored, with its catalog entry: `agscm zoo publish`), returned in
# $OUT as zoo.tar.part-* (15 MB parts). Back home: cat zoo.tar.part-* | tar -xf - -C . puts
# the new files and catalog.json in zoo/, ready to commit; unfinished models are left out.
# Expects ../shared/data (or .data/ in the repository, copied there) and python3 with torch.
#   OUT=/tmp/out bash benchmarks/gpu_zoo.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 AGSCM_CACHE=/tmp/agscm-cache OMP_NUM_THREADS=2
OUT=${OUT:?set OUT}
if [ ! -e ../shared/data/cifar10-jpeg.tar.gz ]; then mkdir -p ../shared/data && cp -r .data/* ../shared/data/; fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch, onnxruntime as o; print('torch', torch.__version__, 'onnxruntime', o.__version__, o.get_available_providers())"; } > "$OUT/machine.txt" 2>&1
start=$(date +%s)
python3 -c "from agscm.data import load_split; [load_split('../shared/data/cifar10-jpeg.tar.gz', s) for s in ('train', 'test')]"
echo "decoded CIFAR-10 in $(( $(date +%s) - start )) s"
MNIST_OTHERS="mnist-mlp-natural mnist-resnet-natural mnist-vgg-natural mnist-resnet-adv"
timeout "${TRAIN_SECONDS:-300}" python3 benchmarks/train_zoo.py cifar10 --zoo runs/zoo --device cuda --jobs 6 > "$OUT/train_cifar10.txt" 2>&1 &
timeout "${TRAIN_SECONDS:-300}" python3 benchmarks/train_zoo.py mnist --zoo runs/zoo --device cuda --jobs 4 --only $MNIST_OTHERS > "$OUT/train_mnist.txt" 2>&1 &
wait
echo "zoo trained in $(( $(date +%s) - start )) s"
# the generator trainer and every attack on CUDA, briefly (a smoke test for the reproduction)
timeout 60 python3 -m agscm train ../shared/data/mnist --source mnist-resnet-natural --zoo runs/zoo \
    --epochs 1 --train-limit 2048 --device cuda -o runs/smoke-g.safetensors > "$OUT/smoke.txt" 2>&1
timeout 60 python3 -m agscm evaluate --data ../shared/data/mnist --zoo runs/zoo --source mnist-resnet-natural \
    --generator mnist-resnet-natural=runs/smoke-g.safetensors --method aeg-gc --method pgd --method mifgsm \
    --method ata --method noise --target mnist-vgg-natural --limit 500 --no-cache --device cuda >> "$OUT/smoke.txt" 2>&1
python3 benchmarks/bench_zoo.py cifar10 --zoo runs/zoo --device cuda --out "$OUT/zoo_cifar10.json" > "$OUT/bench.txt" 2>&1
python3 benchmarks/bench_zoo.py mnist --zoo runs/zoo --device cuda --models $MNIST_OTHERS --out "$OUT/zoo_mnist_others.json" >> "$OUT/bench.txt" 2>&1
rm -rf runs/zoo-publish && cp -r zoo runs/zoo-publish
for model in runs/zoo/*.safetensors; do
  name=$(basename "$model" .safetensors)
  [ -e "runs/zoo-publish/$name.safetensors" ] && continue
  python3 -m agscm zoo publish "$model" --zoo runs/zoo-publish --device cuda >> "$OUT/publish.txt" 2>&1
done
tar -cf - -C runs/zoo-publish --transform 's,^,zoo/,' catalog.json \
    $(cd runs/zoo-publish && for f in *.safetensors; do [ -e "../../zoo/$f" ] || echo "$f"; done) \
    | split -b 15M - "$OUT/zoo.tar.part-"
tar -czf "$OUT/logs.tar.gz" runs/zoo/*.log
echo "done in $(( $(date +%s) - start )) s"; ls -la "$OUT"
