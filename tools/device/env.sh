# Sourced by the device scripts: puts the CUDA 13 libraries of the device's PyTorch
# wheels (cuBLAS, cuRAND, cudart) on LD_LIBRARY_PATH, and unpacks a carried gzipped
# binary: `csranet_bin NAME` prints the path of target-cuda/NAME.gz unpacked.
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
csranet_bin() {
  local b
  b=$(mktemp)
  gunzip -c "target-cuda/$1.gz" > "$b"
  chmod +x "$b"
  echo "$b"
}
