#!/usr/bin/env bash
# Rebuild the SYNTHETIC cohorts, train the comparison runs and the shipped screener, and write pretrained/ri-screener.
# Everything lands under runs/ (git-ignored); only the shipped model and the data cards are committed.
# CPU-sized on purpose (a few hundred clips, tiny encoders); set STEPS / DEPTH to scale up on a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
STEPS=${STEPS:-300}
VERSION=${VERSION:-2}
# the shipped encoder: SSAST-style, 3 blocks, width 96, 16x32 patches (fits a shared 2-core CPU), from scratch
MINI=(--encoder ssast-tiny-patch --depth 3 --set embed_dim=96 --set 'patch=[16,32]' --set 'stride=[16,32]')
DATA=runs/data
RUNS=runs/ft
REAL_ROOT=${REAL_ROOT:-data/realspeech}   # Debian speech packages extracted here (see docs/screening.md)

if [ ! -d "$REAL_ROOT/usr/share/asterisk" ]; then
  mkdir -p data/debs && (cd data/debs && apt-get download asterisk-core-sounds-en-wav asterisk-prompt-es-co \
    asterisk-prompt-fr-armelle klettres-data fillets-ng-data-cs && for f in *.deb; do dpkg-deb -x "$f" ../realspeech; done)
fi

# 1. cohorts: noise bank, synthetic train + held-out (other voices, sentences, seed), real voices train + held-out
$PY -m biomarker cohort noise $DATA/noise_bank --seed 7
$PY -m biomarker cohort synth $DATA/synth-train --n 480 --seed 0 --pool train --noise-bank $DATA/noise_bank \
  --card data_cards/synthetic-ri-train.md
$PY -m biomarker cohort synth $DATA/synth-heldout --n 200 --seed 1 --pool heldout --noise-bank $DATA/noise_bank \
  --card data_cards/synthetic-ri-heldout.md
$PY -m biomarker cohort real "$REAL_ROOT" $DATA/real-train --voices train --clips-per-voice 40 \
  --noise-bank $DATA/noise_bank --split train --seed 3
$PY -m biomarker cohort real "$REAL_ROOT" $DATA/real-heldout --voices heldout --clips-per-voice 40 \
  --raw-controls --split test --seed 4
$PY -m biomarker cohort merge $DATA/train-mix.csv $DATA/synth-train/manifest.csv $DATA/real-train/manifest.csv

EVAL=(--eval $DATA/synth-heldout/manifest.csv --eval $DATA/real-heldout/manifest.csv)

# 2. baseline and deep runs (same splits, same test sets)
$PY -c "from biomarker.evaluate.baselines import run_baseline; run_baseline('$DATA/train-mix.csv', '$RUNS/baseline-mfcc-lr', ['$DATA/synth-heldout/manifest.csv', '$DATA/real-heldout/manifest.csv'])"
$PY -m biomarker finetune --manifest $DATA/train-mix.csv --out $RUNS/ssast-full-scratch --method full "${MINI[@]}" \
  --steps "$STEPS" --batch-size 16 --lr 1e-3 "${EVAL[@]}"
# PEFT and label-budget rows need a pretrained encoder (a frozen random one is not a fair row); not run on the
# shared CPU session (too slow for 12-block encoders), run them where a GPU is available:
if [ -n "${PRETRAINED_ENCODER:-}" ]; then
  for method in full linear adapter conv-adapter; do
    $PY -m biomarker finetune --manifest $DATA/train-mix.csv --out $RUNS/pretrained-$method --method $method \
      --encoder "$PRETRAINED_ENCODER" --steps "$STEPS" "${EVAL[@]}"
  done
  $PY -m biomarker finetune --manifest $DATA/train-mix.csv --out $RUNS/pretrained-linear-100 --method linear \
    --encoder "$PRETRAINED_ENCODER" --labels 100 --steps "$STEPS" "${EVAL[@]}"
  $PY -m biomarker finetune --manifest $DATA/train-mix.csv --out $RUNS/scratch-linear-100 --method linear \
    --encoder "$(basename "$PRETRAINED_ENCODER")" --labels 100 --steps "$STEPS" "${EVAL[@]}"
fi
[ -z "${WITH_MFCCGRAM:-}" ] || $PY -m biomarker finetune --manifest $DATA/train-mix.csv --out $RUNS/mfccgram-full-scratch \
  --method full --encoder mfccgram-transformer --depth 2 --set embed_dim=96 --steps "$STEPS" "${EVAL[@]}"

# 3. ship the best run (SHIP_RUN) with the comparison table in its card
$PY - <<EOF
import json, pathlib
from biomarker.finetune.card import ship
runs = {p.parent.name: json.loads(p.read_text()) for p in sorted(pathlib.Path("$RUNS").glob("*/summary.json"))}
ship("${SHIP_RUN:-$RUNS/ssast-full-scratch}", "pretrained/ri-screener", runs, version="$VERSION")
EOF
