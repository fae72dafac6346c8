#!/usr/bin/env bash
# The benchmark suite of issue 10: convnet against PyTorch CPU on five workloads, both sides in
# the same run, alternating, warm-up untimed, medians of ROUNDS repetitions.
#
#   bash bench/suite.sh                       # everything, ~10-12 min on a quiet 2-core machine
#   WORKLOADS="A B" ROUNDS=5 bash bench/suite.sh
#   QUICK=1 bash bench/suite.sh               # 1 round, 1 step, E on 100 images/class, 1 epoch:
#                                             # checks that every part runs (figures meaningless)
#
#   A  seed 003's MNIST CNN (mnist-cnn), train step, batch 64, Adam
#   B  ResNet-18 (torchvision layout) at 3x32x32, 10 classes, train step, batch 64,
#      SGD momentum 0.9 (no dampening, no Nesterov)
#   C  ResNet-50 inference at 224x224, 1000 classes, batch 1 (C1) and batch 16 (C16)
#   D  VGG-16 inference at 224x224, 1000 classes, batch 8
#   E  `convnet train` with its defaults on Fashion-MNIST (small-cnn, Adam 1e-3, batch 64,
#      4 epochs, LR x0.1 after epoch 3, 10 % validation) against bench/torch_e2e.py
#
# A-D: `convnet bench` against bench/torch_step.py on synthetic data; images/s, mean step time
# and peak RSS (VmHWM) of each process. E: one run of each side; epoch times, validation
# accuracy per epoch, training time until validation accuracy first reaches 91 %, test top-1
# (best-validation weights), wall time and peak RSS of the whole command.
#
# Env: WORKLOADS (default "A B C D E"), ROUNDS (3), THREADS (all cores; compute threads of both
# sides, and E's data-loading workers), VENV (PyTorch venv, created if missing:
# ~/.cache/convnet-torch-venv), FASHION_DIR (Fashion-MNIST IDX files; default the system copy,
# else convnet's download cache), OUT (Markdown table, default /tmp/convnet-suite-last.md),
# STEPS / WARMUP (override the timed / warm-up steps of A-D), A_STEPS, B_WARMUP, … (one
# workload), E_EPOCHS, E_PER_CLASS (E on fewer epochs / a class-balanced subset), QUICK=1.
# A-D on a GPU: DEVICE (convnet's --device, e.g. cuda or vulkan; default cpu), TORCH_DEVICE
# (PyTorch's; default DEVICE with vulkan read as cuda), PRECISION (f32, f16 or bf16: convnet's
# --precision against torch.autocast, with GradScaler for f16), BIN (a convnet binary built
# elsewhere: no cargo build, for a machine without Rust), PYTHON (a Python with torch and
# torchvision installed, instead of the venv), e.g.
#   BIN=./convnet PYTHON=python3 DEVICE=vulkan PRECISION=f16 WORKLOADS="A B C" bash bench/suite.sh
set -euo pipefail
cd "$(dirname "$0")/.."

quick=${QUICK:-0}
rounds=${ROUNDS:-$([ "$quick" = 1 ] && echo 1 || echo 3)}
threads=${THREADS:-$(nproc)}
workloads=${WORKLOADS:-A B C D E}
out=${OUT:-/tmp/convnet-suite-last.md}
venv=${VENV:-$HOME/.cache/convnet-torch-venv}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/convnet-target}
if [ "$quick" = 1 ]; then
  : "${STEPS:=1}" "${WARMUP:=0}" "${E_EPOCHS:=1}" "${E_PER_CLASS:=100}"
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/convnet-suite.XXXXXX")

device=${DEVICE:-cpu}
torch_device=${TORCH_DEVICE:-${device/vulkan/cuda}}
precision=${PRECISION:-f32}

started=$(date +%s)
if [ -n "${BIN:-}" ]; then
  bin=$BIN
else
  cargo build --release -q -p convnet
  bin=$CARGO_TARGET_DIR/release/convnet
fi
if [ -n "${PYTHON:-}" ]; then
  py=$PYTHON
else
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import torch, torchvision' 2>/dev/null; then
    echo "creating the PyTorch venv $venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q torch torchvision
  fi
  py=$venv/bin/python
fi

# Steps of workload $1: $STEPS, else ${1}_STEPS, else $2 (and the same for WARMUP).
steps() { local v=${1}_STEPS; echo "${STEPS:-${!v:-$2}}"; }
warmup() { local v=${1}_WARMUP; echo "${WARMUP:-${!v:-$2}}"; }
field() { sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p" | tail -1; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a/b; else print "-"}'; }

header() {
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'), convnet $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo '+dirty'), $("$py" -c 'import torch; print("PyTorch", torch.__version__)')"
  echo "uptime: $(uptime)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
  echo "isa: $(grep -m1 -o -w 'avx512f\|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ')"
  echo "threads: $threads, rounds: $rounds, workloads: $workloads, device: convnet $device, PyTorch $torch_device, precision: $precision"
  if [[ $torch_device == cuda* ]]; then
    echo "gpu: $("$py" -c 'import torch; print(torch.cuda.get_device_name(0))')"
  fi
}
header | tee "$work/header"

rows=()
# Runs one synthetic workload: NAME LABEL STEPS WARMUP ARGS… (the same arguments for both
# sides), alternating which side goes first, and appends its table row.
pair() {
  local name=$1 label=$2 n=$3 w=$4; shift 4
  local args=(--steps "$n" --warmup "$w" --threads "$threads" --precision "$precision" "$@")
  local cargs=("${args[@]}" --device "$device") targs=("${args[@]}" --device "$torch_device")
  local ci=() ti=() cm=() tm=() cr=() tr=() o t r
  echo "== $name: $label (steps $n, warm-up $w)"
  for r in $(seq "$rounds"); do
    if [ $((r % 2)) = 1 ]; then
      o=$("$bin" bench "${cargs[@]}")
      t=$(OMP_NUM_THREADS=$threads "$py" bench/torch_step.py "${targs[@]}")
    else
      t=$(OMP_NUM_THREADS=$threads "$py" bench/torch_step.py "${targs[@]}")
      o=$("$bin" bench "${cargs[@]}")
    fi
    echo "  round $r convnet: $o"
    echo "  round $r pytorch: $t"
    ci+=("$(field images_per_sec <<<"$o")"); ti+=("$(field images_per_sec <<<"$t")")
    cm+=("$(field step_ms <<<"$o")"); tm+=("$(field step_ms <<<"$t")")
    cr+=("$(field peak_rss_mb <<<"$o")"); tr+=("$(field peak_rss_mb <<<"$t")")
  done
  local a b
  a=$(median "${ci[@]}"); b=$(median "${ti[@]}")
  rows+=("| $name | $label | $a | $b | **$(ratio "$a" "$b")×** | $(median "${cm[@]}") | $(median "${tm[@]}") | $(median "${cr[@]}") | $(median "${tr[@]}") |")
  echo "${rows[-1]}"
}

has() { [[ " $workloads " == *" $1 "* ]]; }
has A && pair A "mnist-cnn train, batch 64, Adam" "$(steps A 30)" "$(warmup A 5)" \
  --model mnist-cnn --batch-size 64 --optimizer adam
has B && pair B "resnet18 3x32x32 train, batch 64, SGD m 0.9" "$(steps B 15)" "$(warmup B 3)" \
  --model resnet18 --input-size 32x32 --in-channels 3 --num-classes 10 --batch-size 64 \
  --optimizer sgd --lr 0.01 --momentum 0.9
if has C; then
  pair C1 "resnet50 224 inference, batch 1" "$(steps C1 20)" "$(warmup C1 3)" \
    --model resnet50 --num-classes 1000 --batch-size 1 --inference
  pair C16 "resnet50 224 inference, batch 16" "$(steps C16 4)" "$(warmup C16 1)" \
    --model resnet50 --num-classes 1000 --batch-size 16 --inference
fi
has D && pair D "vgg16 224 inference, batch 8" "$(steps D 3)" "$(warmup D 1)" \
  --model vgg16 --num-classes 1000 --batch-size 8 --inference

# Runs a command, then prints the peak RSS (MiB) of its largest process to file $1.
rss_run() {
  local file=$1; shift
  "$py" -c 'import resource, subprocess, sys
code = subprocess.call(sys.argv[2:])
open(sys.argv[1], "w").write("%.1f\n" % (resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024))
sys.exit(code)' "$file" "$@"
}

# Summary of a history.csv (convnet's format): epoch times; val acc per epoch; mean epoch time;
# training seconds until val acc first >= 0.91 ("-" if never).
summarise() {
  awk -F, 'NR > 1 {
      t = t (t ? ", " : "") sprintf("%.1f", $7); v = v (v ? ", " : "") sprintf("%.2f", 100 * $6)
      sum += $7; n++
      if (!hit && $6 >= 0.91) { hit = sprintf("%.1f s (epoch %d)", sum, $1) }
    } END { printf "%s|%s|%.1f|%s\n", t, v, sum / n, hit ? hit : "not reached" }' "$1"
}

erows=()
if has E; then
  fashion=${FASHION_DIR:-/usr/share/datasets/fashion-mnist}
  [ -f "$fashion/train-images-idx3-ubyte.gz" ] || fashion=${CONVNET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/convnet}/fashion-mnist
  eargs=(); targs=()
  if [ -n "${E_EPOCHS:-}" ]; then eargs+=(--epochs "$E_EPOCHS"); targs+=(--epochs "$E_EPOCHS"); fi
  if [ -n "${E_PER_CLASS:-}" ]; then eargs+=(--per-class "$E_PER_CLASS"); targs+=(--per-class "$E_PER_CLASS"); fi
  echo "== E: convnet train (defaults) against bench/torch_e2e.py, run folders in $work"
  for side in convnet pytorch; do
    s=$(date +%s.%N)
    if [ $side = convnet ]; then
      rss_run "$work/rss-$side" "$bin" train --threads "$threads" --workers "$threads" \
        --out "$work/e2e-convnet" "${eargs[@]}" | tee "$work/log-$side" | grep -v '^next:' || true
      hist=$work/e2e-convnet/history.csv
    else
      OMP_NUM_THREADS=$threads rss_run "$work/rss-$side" "$py" bench/torch_e2e.py \
        --data "$fashion" --threads "$threads" --workers "$threads" --out "$work/e2e-pytorch" \
        "${targs[@]}" | tee "$work/log-$side" || true
      hist=$work/e2e-pytorch/history.csv
    fi
    wall=$(awk -v s="$s" -v e="$(date +%s.%N)" 'BEGIN {printf "%.1f", e - s}')
    test=$(sed -n 's/.*test top-1 \([0-9.]*\)%.*/\1/p' "$work/log-$side" | tail -1)
    if [ -f "$hist" ]; then
      IFS='|' read -r times vals mean hit < <(summarise "$hist")
    else
      times=failed; vals=-; mean=-; hit=-
    fi
    erows+=("| $side | $times | $mean | $vals | $hit | ${test:--} % | $wall | $(cat "$work/rss-$side" 2>/dev/null || echo -) |")
    echo "${erows[-1]}"
  done
fi

{
  echo '```'
  cat "$work/header"
  echo '```'
  echo
  if [ ${#rows[@]} -gt 0 ]; then
    echo "| | workload | convnet images/s | PyTorch images/s | convnet / PyTorch | convnet step ms | PyTorch step ms | convnet peak RSS MiB | PyTorch peak RSS MiB |"
    echo "|---|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${rows[@]}"
    echo
  fi
  if [ ${#erows[@]} -gt 0 ]; then
    echo "E: Fashion-MNIST, small-cnn, Adam 1e-3, batch 64, epochs: ${E_EPOCHS:-4}${E_PER_CLASS:+, $E_PER_CLASS training images per class}, $threads threads and loader workers each side; epoch time = training loop, validation excluded; time to 91 % = training time summed until validation accuracy first reaches 91 %; test top-1 with the best-validation weights; wall = the whole command."
    echo
    echo "| E | epoch times (s) | mean epoch s | val acc per epoch (%) | time to 91 % val | test top-1 | wall s | peak RSS MiB |"
    echo "|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${erows[@]}"
    echo
  fi
  echo "Suite time: $(( $(date +%s) - started )) s."
} > "$out"
echo
cat "$out"
echo "(table written to $out)"
