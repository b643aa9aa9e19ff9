#!/usr/bin/env bash
# Supervised-only vs CSRA-Net with 1/8 of the CoNSeP training tiles labelled, under the same
# CPU-time budget (issue 4). Both methods start from one shared supervised warm-up on the
# labelled 1/8 (the stand-in for the ImageNet-pretrained encoder the paper starts from, which
# cannot be downloaded here), then each trains for BRANCH_MIN minutes of process CPU time
# (`--budget-clock cpu`, so the two runs can share a loaded machine fairly), 1 thread each,
# and is evaluated on consep/test.
#   tools/compare-semi.sh [CONSEP_DIR] [OUT_DIR] [WARM_MIN] [BRANCH_MIN]
set -euo pipefail
data=${1:-../shared/data/consep}
out=${2:-runs/compare}
warm=${3:-20}
branch=${4:-30}
bin=${CSRANET_BIN:-target/release/csranet}
[ -d "$data/train" ] || { echo "no CoNSeP at $data (give its path as the first argument)" >&2; exit 2; }
[ -x "$bin" ] || cargo build --release
mkdir -p "$out"
export RAYON_NUM_THREADS=1
common=(--data "$data/train" --test "$data/test" --labelled-fraction 1/8 --preset lite
        --epochs 100000 --batch 8 --crop 128 --seed 1 --budget-clock cpu)
if [ ! -f "$out/warm/model.safetensors" ]; then
  "$bin" train "${common[@]}" --method supervised --lr 0.01 --time-budget-min "$warm" \
    --out "$out/warm" > "$out-warm.log" 2>&1
fi
for m in supervised csra; do
  "$bin" train "${common[@]}" --method "$m" --lr 0.005 --time-budget-min "$branch" \
    --init "$out/warm/model.safetensors" --out "$out/$m" > "$out-$m.log" 2>&1 &
done
wait
for m in warm supervised csra; do
  printf '%-11s ' "$m"; tail -n 1 "$out/$m/metrics.json" 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin); p, i = d["pixel"], d["instance"]
print("mIoU {:.4f} F1 {:.4f} bPQ {:.4f} mPQ {:.4f} F1_det {:.4f}".format(
    p["miou"], p["f1"], i["bpq"], i["mpq"], i["f1_det"]))'
done
