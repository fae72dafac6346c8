#!/usr/bin/env bash
# Training-step throughput of convnet against PyTorch CPU on the same network, same batch,
# same thread count, measured in one run with the two sides alternating.
#
#   bash bench/run.sh [MODEL] [ROUNDS]        # default: mnist-cnn, 5 rounds
#
# Env: THREADS (default 2), BATCH (64), STEPS (30), VENV (PyTorch venv; created if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-mnist-cnn}
rounds=${2:-5}
threads=${THREADS:-2}
batch=${BATCH:-64}
steps=${STEPS:-30}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/convnet-target}
venv=${VENV:-$HOME/.cache/convnet-torch-venv}

cargo build --release -q -p convnet
bin=$CARGO_TARGET_DIR/release/convnet
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import torch' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q torch torchvision
fi

echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "isa: $(grep -m1 -o -w 'avx512f\|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ')"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "model=$model batch=$batch threads=$threads steps=$steps rounds=$rounds"
ours=(); theirs=()
for r in $(seq "$rounds"); do
  o=$("$bin" bench --model "$model" --batch-size "$batch" --steps "$steps" --threads "$threads" ${INFERENCE:+--inference})
  t=$(OMP_NUM_THREADS=$threads "$venv/bin/python" bench/torch_step.py --model "$model" --batch-size "$batch" --steps "$steps" --threads "$threads" ${INFERENCE:+--inference})
  echo "round $r: $o"
  echo "round $r: $t"
  ours+=("$(echo "$o" | sed 's/.*"images_per_sec": \([0-9.]*\).*/\1/')")
  theirs+=("$(echo "$t" | sed 's/.*"images_per_sec": \([0-9.]*\).*/\1/')")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
mo=$(median "${ours[@]}"); mt=$(median "${theirs[@]}")
echo "median images/s: convnet $mo, pytorch $mt, ratio convnet/pytorch $(awk -v a="$mo" -v b="$mt" 'BEGIN {printf "%.2f", a/b}')"
