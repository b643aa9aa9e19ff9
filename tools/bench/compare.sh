#!/usr/bin/env bash
# The README "Performance" tables in one command: csranet (candle) and PyTorch side by side on
# this machine, same thread count, same inputs, every candle row followed at once by the same
# PyTorch row (so both see the same load); then how segment_image scales with image size, with
# a whole-slide estimate.
#
#   tools/bench/compare.sh                  # 2 threads, CPU, the full table (9-13 min on 2 cores)
#   THREADS=4 tools/bench/compare.sh
#   QUICK=1 tools/bench/compare.sh          # tiny sizes and one iteration: checks the harness
#   DEVICE=cuda PYTHON=python3 COMPARE_BIN=... tools/bench/compare.sh   # see tools/device/bench.sh
#
# The rows come from the `compare` bench target (benches/compare.rs; the same table as
# `cargo bench --bench compare -- --torch PYTHON --raa off ...`).
# Environment: THREADS (2), PYTHON (.venv/bin/python, needs torch + torchvision:
# `python3 -m venv .venv && .venv/bin/pip install -r tools/requirements.txt`), COMPARE_BIN
# (the compare bench's executable; built by tools/bench/build.sh when unset), DEVICE (cpu),
# ITERS (3), SCALE (1024,2048,4096,8192), PRESETS (lite,paper),
# ROWS (forward,image,train-sup,train-swc), OUT (directory for the JSON).
set -euo pipefail
cd "$(dirname "$0")/../.."
threads=${THREADS:-2}
py=${PYTHON:-.venv/bin/python}
bin=${COMPARE_BIN:-}
device=${DEVICE:-cpu}
iters=${ITERS:-3}
scale=${SCALE:-1024,2048,4096,8192}
presets=${PRESETS:-lite,paper}
rows=${ROWS:-forward,image,train-sup,train-swc}
out=${OUT:-/tmp}
mkdir -p "$out"
if [ -z "$bin" ]; then bin=$(tools/bench/build.sh); fi
size=256 image=2048 tb=2 warm=1 status=0
if [ -n "${QUICK:-}" ]; then
  size=64 image=256 tb=2 iters=1 warm=0 scale=256,512
fi

echo "== machine"
if command -v lscpu >/dev/null; then
  lscpu | grep -E '^(Model name|CPU\(s\)|Thread|Core|L3)' | sed 's/  */ /g'
  echo "AVX-512: $(grep -o -w 'avx512f' /proc/cpuinfo | head -1 || echo no)"
fi
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
"$py" -c 'import torch, torchvision; print("torch", torch.__version__, "torchvision", torchvision.__version__)'
echo "csranet $("$bin" --version | cut -d' ' -f2), $(git rev-parse --short HEAD 2>/dev/null || true)"
if [ "$device" = cuda ]; then nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true; fi

echo
echo "== candle (csranet) vs PyTorch: DeepLabv3, RAA off on both sides, $threads thread(s), $device"
"$bin" --torch "$py" --raa off --threads "$threads" --device "$device" \
  --presets "$presets" --image-presets "$presets" --rows "$rows" --batch 1,8 \
  --train-batch "$tb" --size "$size" --image-size "$image" --iters "$iters" --warmup "$warm" \
  --json | tee "$out/bench_compare.txt" || status=1
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

echo
echo "== segment_image scaling: lite preset with RAA (the shipped model), $threads thread(s), $device"
"$bin" --rows image --raa on --threads "$threads" --device "$device" \
  --image-presets lite --image-size "$scale" --json | tee "$out/bench_scale.txt" || status=1
tail -1 "$out/bench_scale.txt" | python3 tools/bench/scale_table.py || status=1
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
exit "$status"
