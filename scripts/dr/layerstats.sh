#!/usr/bin/env bash
# ri-screener-ssamba@3 (issue 22): SSAMBA-tiny's first 12 blocks, frozen, every layer's mean and std pooled, standardised
# linear probe on every training row of train-dr; then the independent sets. Ship: scripts/dr/ship_ssamba_screener.py
set -euo pipefail
cd "$(dirname "$0")/../.."
date
.venv/bin/biomarker finetune --manifest runs/data/train-dr/manifest.csv --out runs/ft/dr-ssamba-layerstats \
  --method linear --encoder pretrained/ssamba-tiny --depth 12 --set pooling=layer-stats --probe-first --probe-standardise \
  --steps 1 --lr 1e-6 --batch-size 8 --crop-s 3 --eval-every 1 --patience 1 --seed 0 --eval runs/data/synth-heldout/manifest.csv
date
for S in real espeak; do
  .venv/bin/biomarker evaluate --manifest runs/independent/$S/manifest.csv --model runs/ft/dr-ssamba-layerstats/bundle \
    --out runs/dr/eval-dr-ssamba-layerstats-$S --split all
  .venv/bin/biomarker cohort independent-breakdown runs/dr/eval-dr-ssamba-layerstats-$S --manifest runs/independent/$S/manifest.csv
done
date
echo DONE
