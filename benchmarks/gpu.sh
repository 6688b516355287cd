#!/usr/bin/env bash
# Issue 13's GPU measurements in one prepared run on a lent machine (docs/benchmarks.md, "On a GPU"):
#   bash benchmarks/gpu.sh OUT_DIR [FASHION_MNIST_DIR]
# from the repository root. That machine is offline and bare, with its own python3 and torch: abrnet
# runs from src/ with no install, and wheels it lacks (faiss-cpu) are installed from .whl/ if there.
# Parts, in order of worth, each stopped after PART_S seconds (default 120), and none started
# once TOTAL_S (default 420) have passed, so that a slow one cannot spend the lease (15 minutes
# of device time, the machine's start and any second try included); partial output is kept:
#   step     ABR against ReLU per training step, fp32 and bf16 autocast, eager: quick, resnet18 and
#            caffenet at the recipes' batches, resnet18 and caffenet at 256
#   e2e      the digits default run and, given FASHION_MNIST_DIR, the fashion-mnist recipe end to
#            end, with wall times
#   compile  the step under torch.compile, fp32 and bf16
#   search   faiss binary search and the binary-input linear (both on the host's cores)
# OUT_DIR gets summary.txt (each part's status, seconds and tables) and gpu.tgz (every log and
# JSON): a few files, as the device tool brings back at most 8. Exits 1 if any part failed or ran
# out of time. DEVICE=cpu runs every part with tiny settings: tests/test_benchmarks.py.
set -uo pipefail
OUT=${1:?usage: bash benchmarks/gpu.sh OUT_DIR [FASHION_MNIST_DIR]}
FM=${2:-}
DEVICE=${DEVICE:-cuda}
PY=${PYTHON:-python3}
PART_S=${PART_S:-120}
TOTAL_S=${TOTAL_S:-420}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
W=$(mktemp -d)
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" > /dev/null && ! "$PY" -c "import faiss" 2> /dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$W/site" .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:$W/site"
fi
failed=0
finish() {
  tar czf "$OUT/gpu.tgz" -C "$W" --exclude=site --exclude='*.safetensors' --exclude='*.pt' . 2> /dev/null
  cp "$W/summary.txt" "$OUT/summary.txt"
  rm -rf "$W"
}
trap finish EXIT
say() { echo "$*" | tee -a "$W/summary.txt"; }
part() {  # name, command...: run under its time limit, its output in $W/name.log, its status in the summary
  local name=$1; shift
  local left=$((TOTAL_S - SECONDS)) limit=$PART_S t0=$EPOCHREALTIME rc=0 s
  if [ "$left" -lt 5 ]; then say "$name: not run, the $TOTAL_S s were spent"; failed=1; return; fi
  if [ "$left" -lt "$limit" ]; then limit=$left; fi
  timeout -k 5 "$limit" "$@" > "$W/$name.log" 2>&1 || rc=$?
  s=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
  case $rc in
    0) say "$name: ok in $s s" ;;
    124|137) say "$name: ran out of its $limit s"; failed=1 ;;
    *) say "$name: failed (exit $rc) after $s s: $(tail -n 1 "$W/$name.log")"; failed=1 ;;
  esac
  # the tables, and a run's accuracies and own wall time
  grep -E '^\||^deployed step|^training form|^wall time' "$W/$name.log" >> "$W/summary.txt" || true
}

if [ "$DEVICE" = cuda ]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$W/card.txt" 2>&1
  REPEATS=(--repeats 11 --iters 5); MODELS=quick,resnet18,caffenet; BIG=(--models resnet18,caffenet --batch 256 --repeats 7 --iters 3)
  TINY=(); COMPILE=(quick resnet18); SEARCH=(--bits 64,1024 --items 1e5,1e6 --hnsw-items 1e5 --repeats 1)
  LINEAR=(--quick)
else
  echo "$DEVICE" > "$W/card.txt"
  REPEATS=(--repeats 2 --iters 1); MODELS=mlp; BIG=()
  TINY=(--epochs 1 --finetune-epochs 1 --limit 256); COMPILE=(mlp)
  SEARCH=(--bits 64 --items 1e4 --hnsw-items 1e4 --queries 20 --repeats 1)
  LINEAR=(--k 64 --n 64 --batches 1 --groups 4 --budget 0.05 --min-repeats 1)
fi
say "card: $(cat "$W/card.txt"); $("$PY" -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__)' 2>&1)"
STEP=(benchmarks/bench_train_step.py --device "$DEVICE" --schedule adaptive,fixed-window "${REPEATS[@]}")
for amp in "" --amp; do
  tag=${amp:+-bf16}
  part "step$tag" "$PY" "${STEP[@]}" --models "$MODELS" $amp --json "$W/step$tag.json"
  if [ ${#BIG[@]} -gt 0 ]; then
    part "step$tag-256" "$PY" "${STEP[@]}" "${BIG[@]}" $amp --json "$W/step$tag-256.json"
  fi
done
part digits "$PY" -m abrnet train --device "$DEVICE" --out "$W/digits" "${TINY[@]}"
if [ -n "$FM" ]; then
  part fashion-mnist "$PY" -m abrnet train --recipe fashion-mnist --data-dir "$FM" --device "$DEVICE" \
    --out "$W/fm" "${TINY[@]}"
fi
for amp in "" --amp; do
  for model in "${COMPILE[@]}"; do
    part "compile${amp:+-bf16}-$model" "$PY" "${STEP[@]}" --models "$model" --compile $amp --schedule adaptive \
      --json "$W/compile${amp:+-bf16}-$model.json"
  done
done
part search "$PY" benchmarks/bench_search.py "${SEARCH[@]}" --json "$W/search.json"
part binary-linear "$PY" benchmarks/bench_binary_linear.py "${LINEAR[@]}" --json "$W/binary-linear.json"
exit $failed
