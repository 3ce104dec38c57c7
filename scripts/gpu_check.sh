#!/usr/bin/env bash
# GPU path check: one command on a fresh GPU machine (no network) proves the CUDA path and prints the table.
#   bash scripts/gpu_check.sh                 # auto: cuda when present
#   bash scripts/gpu_check.sh --device cpu    # the same checks on CPU (CI keeps this script alive this way)
# Writes gpu_check.json (and the log) under $OUT when set, else runs/gpu_check/.
# Offline install: the wheels of dependencies the GPU image lacks travel in wheelhouse/ (see README).
set -euo pipefail
cd "$(dirname "$0")/.."

DEVICE=auto
QUICK=0
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    --quick) QUICK=1; shift ;;   # tiny sizes: what CI runs on CPU
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
OUT_DIR="${OUT:-runs/gpu_check}"
mkdir -p "$OUT_DIR"
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python

# 1. install the project without network when it is not importable yet (fresh GPU machine)
if ! "$PY" -c "import biomarker, python_speech_features, sqlalchemy, soundfile" 2>/dev/null; then
  echo "== installing biomarker offline from wheelhouse/"
  "$PY" -m pip install -q --no-index --find-links wheelhouse \
    python_speech_features soundfile sqlalchemy alembic argon2-cffi
  "$PY" -m pip install -q --no-index --no-deps --no-build-isolation -e .
fi
"$PY" -c "import torch, torchaudio; print('torch', torch.__version__, 'torchaudio', torchaudio.__version__, 'cuda', torch.cuda.is_available())"

# 2. the tests marked gpu (they skip without CUDA; pytest's exit 5 = none collected is a failure)
# Only the modules that hold gpu tests are collected: the GPU image lacks the app's packages (streamlit, playwright).
echo "== pytest -m gpu"
mapfile -t gpu_modules < <(grep -l "mark.gpu" tests/test_*.py)
set +e
"$PY" -m pytest -q -m gpu -p no:cacheprovider "${gpu_modules[@]}" 2>&1 | tee "$OUT_DIR/pytest_gpu.log"
rc=${PIPESTATUS[0]}
set -e
[ "$rc" = 0 ] || { echo "gpu tests failed (pytest exit $rc)" >&2; exit "$rc"; }

# 3. the measurements, one JSON
echo "== measurements"
args=(--device "$DEVICE" --out "$OUT_DIR/gpu_check.json")
[ "$QUICK" = 1 ] && args+=(--quick)
"$PY" -m biomarker.bench.gpu_check "${args[@]}"
