#!/usr/bin/env bash
# Issue 22: every layer's pooled statistics of a pretrained encoder, stored once for the probe experiments
# (scripts/dr/layer_probe.py, scripts/dr/domain_select.py): train-dr's train and val splits, both independent sets
# and the generator's held-out cohort.  bash scripts/dr/layer_sets.sh OUT_DIR DEPTH [ENCODER] [narrowband]
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$1 depth=$2 encoder=${3:-pretrained/ssamba-tiny} band=${4:-}
mkdir -p "$out"
py() { .venv/bin/python scripts/dr/layer_features.py "$@" "$depth" "$encoder" $band; }
py runs/data/train-dr/manifest.csv train "$out/train.npz"
py runs/data/train-dr/manifest.csv val "$out/val.npz"
py runs/independent/real/manifest.csv all "$out/real.npz"
py runs/independent/espeak/manifest.csv all "$out/espeak.npz"
py runs/data/synth-heldout/manifest.csv all "$out/heldout.npz"
echo "DONE $out"
