#!/usr/bin/env bash
# What one short lease of a GPU machine (minutes, no network) is spent on, in one command:
#   1. scripts/gpu_check.sh: the GPU path check (tests marked gpu + gpu_check.json);
#   2. a time-boxed masked-token pretraining of the shipped encoders on the packed corpus
#      (scripts/pack_corpus.py: Ogg/Opus, travels with the checkout), exported with cards.
# Results land under $OUT (the device tool brings back at most 8 files of 16 MB, so each exported encoder comes
# back as a tar split into parts, written as soon as it is done: cat NAME.tar.part-* | tar x).
#   bash scripts/gpu_lease.sh [CORPUS_DIR] [MINUTES_PER_ENCODER] [ONLY_THESE_ENCODERS (comma-separated)]
set -uo pipefail
cd "$(dirname "$0")/.."
CORPUS="${1:-data/corpus-opus}"
MINUTES="${2:-1.5}"
ONLY="${3:-}"
OUT="${OUT:-runs/gpu_lease}"
PY="${PYTHON:-python3}"
mkdir -p "$OUT"

OUT="$OUT" bash scripts/gpu_check.sh > "$OUT/gpu_check.log" 2>&1
echo "gpu_check exit $?"; tail -n 30 "$OUT/gpu_check.log"

# name  batch  crop_s  mask_ratio  steps (sized to end with the budget on an H100, where the cosine schedule has
# decayed; --max-minutes stops it first on a slower card).
PLAN="
ssast-tiny-patch     32 4.0 0.78 3400
mfccgram-transformer 32 4.0 0.59 3000
ssamba-tiny          16 2.0 0.59 1500"
RUNS=/tmp/gpu_lease_runs
echo "$PLAN" | while read -r NAME BATCH CROP MASK STEPS; do
  [ -z "$NAME" ] && continue
  [ -n "$ONLY" ] && [[ ",$ONLY," != *",$NAME,"* ]] && continue
  echo "== pretrain $NAME"
  EXTRA=(); [ "$NAME" = ssast-tiny-patch ] && EXTRA=(--override positions=sinusoidal)  # see docs/pretraining.md
  "$PY" -m biomarker pretrain run "$NAME" --out "$RUNS/$NAME" --manifest "$CORPUS/manifest.csv" \
    --steps "$STEPS" --batch-size "$BATCH" --crop-s "$CROP" --mask-ratio "$MASK" --warmup 200 --lr 5e-4 \
    --eval-every 0 --checkpoint-every 500 --max-train-clips 0 --max-minutes "$MINUTES" --max-held-out-clips 192 \
    --device cuda --no-progress "${EXTRA[@]}" 2>&1 | tail -n 5
  "$PY" -m biomarker pretrain export "$RUNS/$NAME" "$RUNS/export/$NAME" --corpus-summary "$CORPUS/summary.json" 2>&1 | tail -n 2
  cp "$RUNS/$NAME/log.csv" "$RUNS/export/$NAME/pretrain_log.csv" 2>/dev/null
  tar -C "$RUNS/export" -cf - "$NAME" | split -b 15M - "$OUT/$NAME.tar.part-"
done
ls -la "$OUT"
