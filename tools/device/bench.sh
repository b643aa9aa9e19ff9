#!/usr/bin/env bash
# On the GPU device machine (no Rust toolchain there): the CUDA test subset and the
# benchmark table of tools/bench/compare.sh for --device cuda, next to the device's own
# PyTorch (eager, same architecture, RAA off on both sides), then f16/bf16 forward rows with
# their logit error against f32, then segment_image scaling on the GPU. The rows come from
# the `compare` bench target (benches/compare.rs).
#
# Build here first (see tools/device/check.sh for the toolchain):
#   eval "$(../shared/device/cuda-toolchain.sh)"
#   cargo build --release --features cuda --target-dir target-cuda --example cuda_check
#   gzip -c target-cuda/release/examples/cuda_check > target-cuda/cuda_check.gz
#   gzip -c "$(tools/bench/build.sh --features cuda --target-dir target-cuda)" > target-cuda/compare.gz
# then run with the two .gz files carried (run tool: carry ["target-cuda/compare.gz",
# "target-cuda/cuda_check.gz"]), e.g. `tools/device/bench.sh` with a 600 s limit.
# Writes its tables to $OUT (default /tmp). Usage: tools/device/bench.sh [ITERS]
#
# CPU side check (this machine): `DEVICE_BENCH_CPU=1 tools/device/bench.sh 1` runs the same
# sequence on the CPU with tiny sizes, the compare bench built by tools/bench/build.sh (or
# COMPARE_BIN) and .venv.
set -uo pipefail
iters=${1:-10}
out=${OUT:-/tmp}
mkdir -p "$out"
status=0
if [ -n "${DEVICE_BENCH_CPU:-}" ]; then
  dev=cpu py=${PYTHON:-.venv/bin/python} bin=${COMPARE_BIN:-$(tools/bench/build.sh)}
  sz=(--size 64 --image-size 256 --train-batch 2 --warmup 0) scale=256,512
  check() { echo "(CPU side: cuda_check skipped)"; }
  dtypes="f16"  # candle's CPU matmul has no bf16
else
  . tools/device/env.sh
  dev=cuda py=${PYTHON:-python3} bin=$(csranet_bin compare)
  sz=(--size 256 --image-size 2048 --train-batch 2 --warmup 3) scale=1024,2048,4096,8192
  check() { "$(csranet_bin cuda_check)"; }
  dtypes="f16 bf16"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
fi
"$py" -c 'import torch, torchvision; print("torch", torch.__version__, "torchvision", torchvision.__version__, "cuda", torch.version.cuda)' || status=1

echo "== CUDA test subset: CPU and GPU logits of the same weights agree to 1e-3"
check 2>&1 | tee "$out/cuda_check.txt" || status=1

echo "== candle vs PyTorch eager on $dev, f32, RAA off on both sides"
"$bin" --device "$dev" --torch "$py" --raa off --presets lite,paper --image-presets lite,paper \
  --rows forward,image,train-sup,train-swc --batch 1,8 --iters "$iters" "${sz[@]}" --json \
  | tee "$out/bench_gpu.txt" || status=1

for dt in $dtypes; do
  echo "== $dt forward (error against f32 on the same input), RAA off"
  "$bin" --device "$dev" --torch "$py" --raa off --presets lite,paper --rows forward \
    --batch 8 --dtype "$dt" --iters "$iters" "${sz[@]}" --json | tee "$out/bench_gpu_$dt.txt" || status=1
done

echo "== segment_image scaling, lite with RAA, $dev"
"$bin" --device "$dev" --rows image --raa on --image-presets lite --image-size "$scale" --json \
  | tee "$out/bench_gpu_scale.txt" || status=1
tail -1 "$out/bench_gpu_scale.txt" | python3 tools/bench/scale_table.py || status=1
exit "$status"
