"""The command line answers --help and --version without loading models."""

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from biomarker import __version__
from biomarker.cli import app


def test_version_prints_package_version():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"biomarker {__version__}"


def test_help_lists_bench_group():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "bench" in result.output


def test_python_dash_m_entry_point():
    out = subprocess.run([sys.executable, "-m", "biomarker", "--version"], capture_output=True, text=True, check=True)
    assert __version__ in out.stdout


def test_cli_import_does_not_load_torch():
    code = "import sys, biomarker.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_model_settings_read_json_or_a_bare_word():
    import typer

    from biomarker.cli.options import parse_settings

    assert parse_settings(["embed_dim=96", "patch=[16,32]", "positions=sinusoidal"], "--set") == {
        "embed_dim": 96, "patch": [16, 32], "positions": "sinusoidal"}
    with pytest.raises(typer.BadParameter, match="--set expects KEY=VALUE"):
        parse_settings(["embed_dim"], "--set")
