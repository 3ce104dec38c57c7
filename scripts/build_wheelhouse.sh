#!/usr/bin/env bash
# Collect the wheels a GPU machine without network needs (its image already has torch, torchaudio, numpy,
# einops, safetensors, typer, tqdm, matplotlib, scikit-learn, pytest). Run here, then carry wheelhouse/
# with the checkout to the GPU machine: scripts/gpu_check.sh installs from it with --no-index.
set -euo pipefail
cd "$(dirname "$0")/.."
PY_VERSION="${1:-3.12}"   # the GPU image's Python
PIP=.venv/bin/pip
mkdir -p wheelhouse
"$PIP" download -q -d wheelhouse --only-binary=:all: --python-version "$PY_VERSION" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
  --no-deps soundfile sqlalchemy greenlet typing_extensions alembic mako markupsafe argon2-cffi argon2-cffi-bindings cffi pycparser
"$PIP" wheel -q -w wheelhouse --no-deps python_speech_features   # published as an sdist only
ls wheelhouse
