#!/usr/bin/env bash
# Two convnet binaries and PyTorch on the same training step (or INFERENCE=1), alternating,
# for before/after figures of one change:
#
#   cp ~/.cache/convnet-target/release/convnet /tmp/convnet-before   # before the change
#   bash bench/compare.sh /tmp/convnet-before ~/.cache/convnet-target/release/convnet small-cnn 5
#   bash bench/compare.sh BEFORE AFTER resnet18 5 --input-size 32x32 --in-channels 3 \
#     --num-classes 10 --optimizer sgd --lr 0.01 --momentum 0.9       # suite workload B
#
# Arguments after ROUNDS go to both `convnet bench` and bench/torch_step.py.
# Env: THREADS (2), BATCH (64), STEPS (30), VENV (PyTorch venv, as in run.sh). Prints the
# median images/s of each side and the after/PyTorch ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
before=$1; after=$2; model=${3:-small-cnn}; rounds=${4:-5}
extra=("${@:5}")
threads=${THREADS:-2}; batch=${BATCH:-64}; steps=${STEPS:-30}
venv=${VENV:-$HOME/.cache/convnet-torch-venv}
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "model=$model ${extra[*]} batch=$batch threads=$threads steps=$steps rounds=$rounds ${INFERENCE:+inference}"
ips() { sed 's/.*"images_per_sec": \([0-9.]*\).*/\1/'; }
b=(); a=(); t=()
for r in $(seq "$rounds"); do
  args=(bench --model "$model" --batch-size "$batch" --steps "$steps" --threads "$threads" ${INFERENCE:+--inference} "${extra[@]}")
  b+=("$("$before" "${args[@]}" | ips)")
  a+=("$("$after" "${args[@]}" | ips)")
  t+=("$(OMP_NUM_THREADS=$threads "$venv/bin/python" bench/torch_step.py --model "$model" --batch-size "$batch" --steps "$steps" --threads "$threads" ${INFERENCE:+--inference} "${extra[@]}" | ips)")
  echo "round $r: before ${b[-1]}  after ${a[-1]}  pytorch ${t[-1]}"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
mb=$(median "${b[@]}"); ma=$(median "${a[@]}"); mt=$(median "${t[@]}")
echo "median images/s: before $mb, after $ma (x$(awk -v a="$ma" -v b="$mb" 'BEGIN {printf "%.2f", a/b}')), pytorch $mt, after/pytorch $(awk -v a="$ma" -v b="$mt" 'BEGIN {printf "%.2f", a/b}')"
