#!/usr/bin/env bash
# One entry point for a fresh Debian machine; both forms are idempotent.
#   bash run.sh app    set everything up, then start the app (SQLite + the shipped model)
#   bash run.sh test   set everything up, then run the whole test suite
set -euo pipefail
cd "$(dirname "$0")"

APT_PACKAGES=(espeak-ng sox libsox-fmt-all chromium pocketsphinx-testdata)
VENV=.venv

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

install_debian_packages() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  # PostgreSQL 15 backs the store tests; use the server already on the machine when there is one.
  command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

install_python_env() {
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  local stamp="$VENV/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q -e ".[test]"
    touch "$stamp"
  fi
}

install_debian_packages
install_python_env

case "${1:-}" in
  app)
    exec "$VENV/bin/biomarker" serve ;;
  test)
    shift
    # the layering contracts of pyproject.toml ([tool.importlinter], docs/ARCHITECTURE.md): a back-arrow fails here
    "$VENV/bin/lint-imports" --no-cache
    set +e
    "$VENV/bin/python" -m pytest "$@"
    rc=$?
    set -e
    # pytest exits 5 when it collected no test: that is a failure of the suite, not a pass.
    [ "$rc" = 5 ] && echo "no tests were collected" >&2
    exit "$rc" ;;
  *)
    echo "usage: bash run.sh app|test" >&2; exit 2 ;;
esac
