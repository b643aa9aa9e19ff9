#!/usr/bin/env bash
# Trains the default `nuclei` model from this repository alone (no pretrained weights):
# CoNSeP train (instances + 4 classes) and the Emory tiles of the brain set (instances only:
# partial labels), supervised,
# with the photometric (stain/colour) augmentation on half of the labelled tiles.
#
#   tools/train/default-model.sh DATA_ROOT OUT MINUTES [extra csranet train flags...]
#
# DATA_ROOT holds consep/{train,test} and gbm/ (layouts in README "Data").
# The run stops after MINUTES of CPU time with a checkpoint in OUT; running the same command
# again continues it (--resume), so a longer run continues a shorter one. On a machine with
# an NVIDIA GPU add `--device cuda` (build with --features cuda).
set -euo pipefail
root=${1:?DATA_ROOT}; out=${2:?OUT}; minutes=${3:?MINUTES}; shift 3
cd "$(dirname "$0")/../.."
cargo build --release --bin csranet
mkdir -p "$out"
exec target/release/csranet train \
  --preset nuclei \
  --data "$root/consep/train" --data "$root/gbm:emory_*" \
  --test "$root/consep/test" \
  --method supervised --epochs 200 --batch 8 --crop 128 --lr 0.01 \
  --labelled-photometric 0.5 --seed 1 \
  --time-budget-min "$minutes" --budget-clock cpu --log-every 10 \
  --out "$out" --resume "$@"
