#!/usr/bin/env bash
# Reproduce the shipped pretrained encoders end to end:
#   corpus (Debian speech + espeak-ng) -> masked-token pretraining -> pretrained/<name>/ (fp16 weights, card.md)
#
#   bash scripts/pretrain_shipped.sh [--device auto|cpu|cuda] [--profile session|cpu|gpu] [--only NAME]
#                                    [--corpus DIR] [--runs DIR] [--export DIR] [--nproc N] [--budget-minutes M]
#
# --budget-minutes M bounds the whole script, corpus build included: each encoder's training gets a share of
# what is left (the plan's minutes column are the weights), after a reserve for feature precomputation,
# held-out evaluation and export. The cpu profile defaults to 120 (the issue's 2 h); 0 uses the column as minutes.
#
# Profiles (steps, batch, crop per encoder are in the table below):
#   session  the settings of this session's CPU runs (a 2-core CPU shared with 7 other jobs, three encoders
#            side by side, a fixed subset of the corpus precomputed); too short to ship, see docs/pretraining.md.
#   cpu      an idle 2-core CPU, all encoders one after another within 2 h, corpus build included
#            (--budget-minutes 120 by default; the wall time of each part is written to RUNS/timing.csv).
#   gpu      one CUDA GPU (bf16 autocast): the whole corpus, many more steps; --nproc N uses torchrun DDP.
# Runs resume: rerunning the script continues every unfinished run from its checkpoint under --runs.
set -euo pipefail
cd "$(dirname "$0")/.."

DEVICE=auto
PROFILE=""
CORPUS=data/corpus
RUNS=runs/pretrain
ONLY=""
NPROC=1
EXPORT=pretrained
BUDGET=""
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    --profile) PROFILE="$2"; shift 2 ;;
    --corpus) CORPUS="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    --only) ONLY="$2"; shift 2 ;;
    --nproc) NPROC="$2"; shift 2 ;;
    --export) EXPORT="$2"; shift 2 ;;
    --budget-minutes) BUDGET="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

PY=${PYTHON:-.venv/bin/python}
if [ -z "$PROFILE" ]; then
  if [ "$DEVICE" = cuda ] || { [ "$DEVICE" = auto ] && "$PY" -c 'import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)'; }; then
    PROFILE=gpu
  else
    PROFILE=cpu
  fi
fi
[ -z "$BUDGET" ] && { [ "$PROFILE" = cpu ] && BUDGET=120 || BUDGET=0; }
echo "profile=$PROFILE device=$DEVICE corpus=$CORPUS runs=$RUNS export=$EXPORT nproc=$NPROC budget=${BUDGET}min"
mkdir -p "$RUNS"
TIMING="$RUNS/timing.csv"
[ -f "$TIMING" ] || echo "part,seconds,finished_utc" > "$TIMING"
START=$SECONDS
mark() { echo "$1,$2,$(date -u +%FT%TZ)" >> "$TIMING"; }

# 1. corpus (idempotent: skipped when the manifest exists)
if [ ! -f "$CORPUS/manifest.csv" ]; then
  "$PY" -m biomarker corpus build "$CORPUS"
  mark corpus $((SECONDS - START))
fi

# 2. encoders:  name  model  steps  batch  crop_s  mask_ratio  max_train_clips(0=all)  minutes  held_out_clips
#    (minutes: a weight of the budget when --budget-minutes is set, else a cap, 0 = none)
case "$PROFILE" in
  session) PLAN="
ssast-tiny-patch     ssast-tiny-patch      300   8  4.0  0.78  1200  40  48
mfccgram-transformer mfccgram-transformer  150   8  2.0  0.59  1200  40  48
ssamba-tiny          ssamba-tiny            80   4  2.0  0.59   600  40  32" ;;
  cpu) PLAN="
ssast-tiny-patch     ssast-tiny-patch     1800   8  4.0  0.78     0  45 192
mfccgram-transformer mfccgram-transformer  700   8  3.0  0.59     0  20 192
ssamba-tiny          ssamba-tiny          1200   8  2.0  0.59     0  40 192" ;;
  gpu) PLAN="
ssast-tiny-patch     ssast-tiny-patch    20000  64  6.0  0.78     0   0 512
mfccgram-transformer mfccgram-transformer 20000  64  6.0  0.59     0   0 512
ssamba-tiny          ssamba-tiny         20000  64  6.0  0.59     0   0 512" ;;
  *) echo "unknown profile $PROFILE" >&2; exit 2 ;;
esac

if [ "$NPROC" -gt 1 ]; then
  LAUNCH=("$PY" -m torch.distributed.run --standalone --nproc_per_node="$NPROC" -m biomarker)
else
  LAUNCH=("$PY" -m biomarker)
fi

RESERVE_S=240  # per encoder: feature precomputation (cached after the first), held-out evaluation, export
PLAN=$(echo "$PLAN" | awk -v only="$ONLY" 'NF && (only == "" || $1 == only)')
WEIGHT_LEFT=$(echo "$PLAN" | awk '{ w += $8 } END { print w }')
ENCODERS_LEFT=$(echo "$PLAN" | wc -l)
while read -r NAME MODEL STEPS BATCH CROP MASK CLIPS MINUTES HELD; do
  if [ "$BUDGET" != 0 ]; then  # this encoder's share of the time that is left
    LEFT_S=$(( BUDGET * 60 - (SECONDS - START) - RESERVE_S * ENCODERS_LEFT ))
    WEIGHT=$MINUTES
    MINUTES=$(awk -v left="$LEFT_S" -v w="$WEIGHT" -v total="$WEIGHT_LEFT" \
      'BEGIN { m = left / 60 * w / total; printf "%.1f", (m > 1 ? m : 1) }')
    WEIGHT_LEFT=$(awk -v a="$WEIGHT_LEFT" -v b="$WEIGHT" 'BEGIN { print a - b }')
    ENCODERS_LEFT=$((ENCODERS_LEFT - 1))
  fi
  PART_START=$SECONDS
  WARMUP=$(( STEPS / 10 > 1000 ? 1000 : STEPS / 10 ))
  echo "== $NAME: $MODEL, $STEPS steps or $MINUTES min, batch $BATCH x ${CROP}s, mask $MASK"
  # SSAST-tiny with its learned positional table never beat the mean-patch baseline; fixed positions do
  # (docs/pretraining.md, "SSAST-tiny needs fixed positions")
  EXTRA=(); [ "$MODEL" = ssast-tiny-patch ] && EXTRA=(--override positions=sinusoidal)
  "${LAUNCH[@]}" pretrain run "$MODEL" --out "$RUNS/$NAME" --manifest "$CORPUS/manifest.csv" \
    --steps "$STEPS" --batch-size "$BATCH" --crop-s "$CROP" --mask-ratio "$MASK" --warmup "$WARMUP" \
    --lr 5e-4 --eval-every 0 --checkpoint-every 10 --max-train-clips "$CLIPS" --max-minutes "$MINUTES" \
    --max-held-out-clips "$HELD" --device "$DEVICE" --no-progress --feature-cache "$RUNS/feature_cache" \
    "${EXTRA[@]}" < /dev/null
  mark "$NAME" $((SECONDS - PART_START))
done <<< "$PLAN"

# 3. export with cards, once every encoder is trained, so each card can state the whole script's wall time
TOTAL_MIN=$(awk -F, 'NR > 1 { s += $2 } END { printf "%.0f", s / 60 }' "$TIMING")
while read -r NAME _; do
  "$PY" -m biomarker pretrain export "$RUNS/$NAME" "$EXPORT/$NAME" --corpus-summary "$CORPUS/summary.json" \
    --conditions "reproduced by \`scripts/pretrain_shipped.sh --profile $PROFILE\`: the whole script (corpus, \
features, the encoders one after another, held-out evaluation) took $TOTAL_MIN min of wall time ($TIMING)"
  cp "$RUNS/$NAME/log.csv" "$EXPORT/$NAME/pretrain_log.csv" 2>/dev/null || true
done <<< "$PLAN"
echo "done in $(( (SECONDS - START) / 60 )) min this invocation ($TOTAL_MIN min over all invocations, $TIMING): \
$EXPORT/*/card.md hold the measured numbers"
