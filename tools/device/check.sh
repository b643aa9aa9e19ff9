#!/usr/bin/env bash
# On the GPU device machine (no Rust toolchain there): CPU-vs-CUDA logits and CUDA forward
# timings (examples/cuda_check), then the 1/8-label comparison of supervised-only and
# CSRA-Net training under the same GPU time budget. Build the binaries here first:
#   eval "$(../shared/device/cuda-toolchain.sh)"
#   cargo build --release --features cuda --target-dir target-cuda --bin csranet --example cuda_check
#   gzip -c target-cuda/release/examples/cuda_check > target-cuda/cuda_check.gz
#   gzip -c target-cuda/release/csranet > target-cuda/csranet.gz
# and copy ../shared/data/consep to devdata/consep (git-excluded, carried).
# Usage: tools/device/check.sh [MINUTES_PER_METHOD] [MINUTES_FULL]
# The last run trains the default model on all CoNSeP training labels and leaves its
# weights in $OUT/model.safetensors.
set -euo pipefail
minutes=${1:-3}
full=${2:-3}
out=${OUT:-/tmp}
. tools/device/env.sh
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
"$(csranet_bin cuda_check)" | tee "$out/cuda_check.txt"
bin=$(csranet_bin csranet)
for m in supervised csra; do
  echo "== $m, 1/8 labelled, $minutes min"
  "$bin" train --data devdata/consep/train --test devdata/consep/test \
    --labelled-fraction 1/8 --method "$m" --preset lite --epochs 40 --steps-per-epoch 25 \
    --batch 8 --crop 128 --lr 0.01 --seed 1 --time-budget-min "$minutes" --device cuda \
    --out "/tmp/run-$m" 2>&1 | grep -v '^\s*$' | tail -3 | tee "$out/train_$m.txt"
done
echo "== supervised, all labels, $full min"
"$bin" train --data devdata/consep/train --test devdata/consep/test \
  --labelled-fraction 1 --method supervised --preset lite --epochs 200 \
  --batch 8 --crop 128 --lr 0.01 --seed 1 --time-budget-min "$full" --device cuda \
  --out /tmp/run-full 2>&1 | grep -v '^\s*$' | tail -3 | tee "$out/train_full.txt"
cp /tmp/run-full/model.safetensors "$out/model.safetensors"
