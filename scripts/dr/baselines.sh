#!/usr/bin/env bash
# The same-rows baselines (train-dr, every row), measured on the held-out cohort and the independent sets.
set -euo pipefail
cd "$(dirname "$0")/../.."
for FEATURES in mfcc-stats egemaps; do
  OUT=runs/ft/baseline-${FEATURES%%-*}-lr-dr-full
  [ -f "$OUT/summary.json" ] || .venv/bin/python -c "from biomarker.evaluate.baselines import run_baseline
run_baseline('runs/data/train-dr/manifest.csv', '$OUT', ['runs/data/synth-heldout/manifest.csv', 'runs/independent/real/manifest.csv', 'runs/independent/espeak/manifest.csv'], seed=0, features='$FEATURES')"
  date
done
echo DONE
