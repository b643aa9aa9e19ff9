#!/usr/bin/env bash
# Supervised-only vs CSRA-Net with 1/8 of the CoNSeP training tiles labelled, under the same
# CPU-time budget (issue 4). Both methods start from one shared supervised warm-up on the
# labelled 1/8 (the stand-in for the ImageNet-pretrained encoder the paper starts from, which
# cannot be downloaded here), then each trains for BRANCH_MIN minutes of process CPU time
# (`--budget-clock cpu`, so the two runs can share a loaded machine fairly), 1 thread each,
# and is evaluated on consep/test.
# The default split seed 4 is the first seed (0, 1, 2, ...) whose labelled 1/8 (3 of the 27
# source images) contains all four nucleus classes and a nucleus-pixel share within 15% of the
# whole training set's (17.3% vs 16.4%; `tools/split_stats.py` prints every seed's). Seed 1,
# for example, labels 3 images with 1.6% nucleus pixels and no epithelium, and a model
# trained on them predicts background everywhere.
#   tools/compare-semi.sh [CONSEP_DIR] [OUT_DIR] [WARM_MIN] [BRANCH_MIN] [SEED]
set -euo pipefail
data=${1:-../shared/data/consep}
out=${2:-runs/compare}
warm=${3:-20}
branch=${4:-30}
seed=${5:-4}
bin=${CSRANET_BIN:-target/release/csranet}
[ -d "$data/train" ] || { echo "no CoNSeP at $data (give its path as the first argument)" >&2; exit 2; }
[ -x "$bin" ] || cargo build --release
mkdir -p "$out"
export RAYON_NUM_THREADS=1
common=(--data "$data/train" --test "$data/test" --labelled-fraction 1/8 --preset lite
        --epochs 100000 --batch 8 --crop 128 --seed "$seed" --budget-clock cpu)
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
