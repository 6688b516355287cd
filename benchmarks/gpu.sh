#!/usr/bin/env bash
# The GPU measurements of docs/benchmarks.md in one prepared run:
#   bash benchmarks/gpu.sh OUT_DIR [FASHION_MNIST_DIR]
# - ABR against ReLU per training step (quick, resnet18, caffenet), fp32 and bf16
#   autocast, eager and torch.compile;
# - the digits default run and the fashion-mnist recipe end to end, with wall times
#   (the recipe needs the IDX files: FASHION_MNIST_DIR, e.g. a copy of
#   /usr/share/datasets/fashion-mnist carried to the machine);
# - faiss binary search (faiss-cpu: the search runs on the host's cores).
# DEVICE=cpu runs the same script on a CPU with tiny settings (how it is tested).
set -euo pipefail
OUT=${1:?usage: bash benchmarks/gpu.sh OUT_DIR [FASHION_MNIST_DIR]}
FM=${2:-}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"
if [ "$DEVICE" = cuda ]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/card.csv"
  REPEATS="--repeats 15 --iters 10"; MODELS=quick,resnet18,caffenet; EPOCHS=""
else
  REPEATS="--repeats 2 --iters 1"; MODELS=quick; EPOCHS="--epochs 1 --finetune-epochs 1 --limit 512"
fi
python -c "import torch; print(torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no cuda')" > "$OUT/torch.txt"
for amp in "" --amp; do
  for compile in "" --compile; do
    name="step${amp:+-bf16}${compile:+-compile}"
    python benchmarks/bench_train_step.py --device "$DEVICE" --models "$MODELS" --schedule paper,adaptive \
      $REPEATS $amp $compile --json "$OUT/$name.json" | tee "$OUT/$name.md"
  done
done
timed() {  # name, command...: wall time of one end-to-end run
  local name=$1; shift
  local t0=$EPOCHREALTIME
  "$@" > "$OUT/$name.log" 2>&1
  awk -v n="$name" -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%s %.1f s\n", n, b - a }' | tee -a "$OUT/wall.txt"
}
timed digits abrnet train --device "$DEVICE" --out "$OUT/digits" $EPOCHS
if [ -n "$FM" ]; then
  timed fashion-mnist abrnet train --recipe fashion-mnist --data-dir "$FM" --device "$DEVICE" --out "$OUT/fm" $EPOCHS
fi
python benchmarks/bench_search.py --bits 64,256,1024 --items 1e5,1e6 --hnsw-items 1e5 --json "$OUT/search.json" \
  ${EPOCHS:+--items 1e4 --bits 64 --queries 20 --repeats 1} | tail -8
