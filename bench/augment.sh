#!/usr/bin/env bash
# Decode + augment + normalise throughput of an ImageNet-style training pipeline (random
# resized crop 224, horizontal flip, colour jitter 0.4/0.4/0.4, ImageNet normalisation) from
# JPEGs of about 500x375: convnet's training loader against a torchvision DataLoader with the
# same worker count, in one run, the two sides alternating.
#
#   bash bench/augment.sh [ROUNDS]        # default: 3 rounds, median reported
#
# Env: WORKERS (default: nproc), IMAGES (200), PASSES (2 timed passes after a warm-up),
# BATCH (64), VENV (PyTorch venv; created if missing), DATA (image folder; generated if missing),
# CONVNET (the convnet binary to time; default: build it), BASE (another convnet binary, e.g. a
# build before a change: timed in each round too, the two taking turns, for a before/after ratio).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
workers=${WORKERS:-$(nproc)}
images=${IMAGES:-200}
passes=${PASSES:-2}
batch=${BATCH:-64}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/convnet-target}
venv=${VENV:-$HOME/.cache/convnet-torch-venv}
data=${DATA:-${TMPDIR:-/tmp}/convnet-augment-bench-$images}

bin=${CONVNET:-}
if [ -z "$bin" ]; then
  cargo build --release -q -p convnet
  bin=$CARGO_TARGET_DIR/release/convnet
fi
base=${BASE:-}
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import torch, torchvision' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q torch torchvision
fi
if [ ! -d "$data" ]; then
  # Photo-like JPEGs (smooth gradients, shapes, sensor noise; quality 90), no download.
  "$venv/bin/python" - "$data" "$images" <<'PY'
import os, sys
import numpy as np
from PIL import Image, ImageDraw
root, n = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
for i in range(n):
    cls = os.path.join(root, f"class{i % 4}")
    os.makedirs(cls, exist_ok=True)
    w, h = (500, 375) if i % 3 else (375, 500)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([128 + 100 * np.sin(x / rng.uniform(20, 90) + c) * np.cos(y / rng.uniform(20, 90))
                     for c in range(3)], -1)
    img = Image.fromarray(np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    for _ in range(6):
        x0, y0 = rng.integers(0, w - 60), rng.integers(0, h - 60)
        d.ellipse([x0, y0, x0 + rng.integers(20, 150), y0 + rng.integers(20, 150)],
                  fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    img.save(os.path.join(cls, f"{i:04d}.jpg"), quality=90)
PY
fi

spec="rrc=224,hflip,jitter=0.4"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) ($(nproc) cores)"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "data=$data images=$images workers=$workers batch=$batch passes=$passes rounds=$rounds"
echo "convnet --augment $spec  vs  RandomResizedCrop(224), RandomHorizontalFlip(), ColorJitter(0.4,0.4,0.4), ToTensor(), Normalize"
rate() { sed 's/.*"images_per_sec": \([0-9.]*\).*/\1/'; }
convnet() {
  "$1" augment --bench --data "$data" --augment "$spec" --workers "$workers" \
    --batch-size "$batch" --passes "$passes" --seed "$2"
}
ours=(); theirs=(); bases=()
for r in $(seq "$rounds"); do
  # With a base, the two convnet binaries take turns at going first.
  if [ -n "$base" ] && [ $((r % 2)) = 0 ]; then
    b=$(convnet "$base" "$r")
    echo "round $r: base $b"
    bases+=("$(echo "$b" | rate)")
  fi
  o=$(convnet "$bin" "$r")
  echo "round $r: $o"
  ours+=("$(echo "$o" | rate)")
  if [ -n "$base" ] && [ $((r % 2)) = 1 ]; then
    b=$(convnet "$base" "$r")
    echo "round $r: base $b"
    bases+=("$(echo "$b" | rate)")
  fi
  t=$("$venv/bin/python" bench/augment_torch.py "$data" "$workers" "$passes" "$batch")
  echo "round $r: $t"
  theirs+=("$(echo "$t" | rate)")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a/b}'; }
# Per-round ratios too: on a loaded machine they drift less than the rates.
ratios() {
  local -n a=$1 b=$2
  for i in "${!a[@]}"; do ratio "${a[$i]}" "${b[$i]}"; echo; done
}
mo=$(median "${ours[@]}"); mt=$(median "${theirs[@]}")
echo "median images/s: convnet $mo, torchvision $mt, ratio convnet/torchvision $(ratio "$mo" "$mt")" \
  "(median of per-round ratios $(median $(ratios ours theirs)))"
if [ -n "$base" ]; then
  mb=$(median "${bases[@]}")
  echo "median images/s: base $mb, ratio base/torchvision $(ratio "$mb" "$mt")" \
    "(per-round $(median $(ratios bases theirs))), convnet/base $(ratio "$mo" "$mb")" \
    "(per-round $(median $(ratios ours bases)))"
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
