#!/usr/bin/env bash
# Issue 22: the scratch MFCC-gram Transformer on train-dr at @7's full length (800 steps; the 2026-12-06 run was
# stopped at 100 of 300 on a loaded CPU: validation 0.910, independent AUROC 0.850 / 0.865 / 0.904 / 0.902, healthy
# real voices referred 81 % / 86 %). The rule, fixed before the run: early stopping and threshold on train-dr's
# validation split (finetune's own); it replaces neither shipped screener unless, at its own threshold, it beats
# ri-screener-ssamba@3's independent decision table (more goals met, none lost) without losing the held-out
# cohort (AUROC within 0.01 of @7's 0.990). Then both independent sets once, and paired AUROC against @3's rows.
#   bash scripts/dr/mfcc_full.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
date
[ -f runs/ft/dr-mfcc-800/summary.json ] || .venv/bin/biomarker finetune --manifest runs/data/train-dr/manifest.csv \
  --out runs/ft/dr-mfcc-800 --method full --encoder mfccgram-transformer --set embed_dim=256 --steps 800 --batch-size 16 \
  --crop-s 6 --lr 1e-3 --eval-every 100 --patience 3 --seed 0 --eval runs/data/synth-heldout/manifest.csv
date
for S in real espeak; do
  .venv/bin/biomarker evaluate --manifest runs/independent/$S/manifest.csv --model runs/ft/dr-mfcc-800/bundle \
    --out runs/dr/eval-dr-mfcc-800-$S --split all
  .venv/bin/biomarker cohort independent-breakdown runs/dr/eval-dr-mfcc-800-$S --manifest runs/independent/$S/manifest.csv
done
date
echo DONE
