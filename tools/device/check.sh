#!/usr/bin/env bash
# Runs on the GPU device machine (no Rust toolchain there): the CUDA build of
# examples/cuda_check, carried gzipped as target-cuda/cuda_check.gz. Build it here with
#   eval "$(../shared/device/cuda-toolchain.sh)"
#   cargo build --release --features cuda --target-dir target-cuda --example cuda_check
#   gzip -c target-cuda/release/examples/cuda_check > target-cuda/cuda_check.gz
set -euo pipefail
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
# cuBLAS/cuRAND/cudart 13 come with the device's PyTorch wheels.
libs=$(python3 - <<'PY' 2>/dev/null || true
import glob, os, site
dirs = set()
for s in site.getsitepackages():
    for f in glob.glob(os.path.join(s, "nvidia", "**", "lib*.so*"), recursive=True):
        dirs.add(os.path.dirname(f))
print(":".join(sorted(dirs)))
PY
)
export LD_LIBRARY_PATH="${libs}:${LD_LIBRARY_PATH:-}"
bin=$(mktemp)
gunzip -c target-cuda/cuda_check.gz > "$bin"
chmod +x "$bin"
"$bin" | tee "${OUT:-/tmp}/cuda_check.txt"
