"""The house's layering is a contract a tool checks: `lint-imports` (import-linter) reads the contracts in
pyproject.toml ([tool.importlinter]: imports run downward through the layers of docs/ARCHITECTURE.md; the store,
settings, records and i18n never import torch; nothing in the library imports the CLI). This test runs it, so a
back-arrow or an import circle across layers fails locally as it fails in `bash run.sh test`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_imports_keep_every_layering_contract():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache", "--config", str(ROOT / "pyproject.toml")], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout
