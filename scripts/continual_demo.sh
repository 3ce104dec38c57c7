#!/usr/bin/env bash
# Continual-learning demonstration on three SYNTHETIC cohorts that differ the way real cohorts do:
#   clinic-ptbr    pt-BR, training voices, quiet clinic room, 16 kHz wideband
#   ward-es        Spanish, training voices, ward noise in every clip (SPIRA protocol, both classes)
#   phone-heldout  pt-BR/French/German held-out voices and sentences, 8 kHz telephone band (300-3400 Hz)
# Trains them in that order with AAT adapters (and conv adapters if asked) and with sequential full fine-tuning; publishes
# each adapter stage as a new model version in the catalog, and writes the forgetting table + PNG.
#
#   bash scripts/continual_demo.sh [OUT_DIR]     (default runs/continual-demo)
#   ENCODER=pretrained/ssast-tiny-patch ATTENTION="sdpa factorized" bash scripts/continual_demo.sh runs/continual-pretrained
#
# Environment: N_CLIPS (per cohort, default 80), STEPS (per stage, default 48), METHODS (default "adapter full"; add
# conv-adapter), ENCODER (a pretrained encoder dir; default none: a tiny random-init ssast-tiny-patch),
# ATTENTION (default "sdpa"; "sdpa factorized" also runs every method with factorized frequency-time attention on
# the same encoder weights and writes attention.md), SEED (training seed, default 0), BIOMARKER_HOME (the catalog's user models folder; default
# OUT_DIR/home so the demo never touches your own models). Times are in docs/continual.md.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-runs/continual-demo}"
export N_CLIPS="${N_CLIPS:-80}" STEPS="${STEPS:-48}" METHODS="${METHODS:-adapter full}" OUT
export ENCODER="${ENCODER:-}" ATTENTION="${ATTENTION:-sdpa}" SEED="${SEED:-0}"
export BIOMARKER_HOME="${BIOMARKER_HOME:-$OUT/home}"
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3

"$PY" - <<'EOF'
import json
import os
from pathlib import Path

from biomarker.finetune.continual_demo import DemoCohort, make_demo_cohort, run_demonstration

out = Path(os.environ["OUT"])
n, steps = int(os.environ["N_CLIPS"]), int(os.environ["STEPS"])
cohorts = [
    DemoCohort("clinic-ptbr", pool="train", languages=("pt-br",), noise="none", channel="wideband", seed=11),
    DemoCohort("ward-es", pool="train", languages=("es",), noise="ward", channel="wideband", seed=12),
    DemoCohort("phone-heldout", pool="heldout", languages=(), noise="none", channel="telephone", seed=13),
]
manifests = [(c.name, make_demo_cohort(c, out / "cohorts", n=n)) for c in cohorts]
summary = run_demonstration(manifests, out, steps=steps, methods=os.environ["METHODS"].split(),
                            encoder=os.environ["ENCODER"] or None, attentions=os.environ["ATTENTION"].split(),
                            seed=int(os.environ["SEED"]))
print(json.dumps(summary, indent=2))
EOF
