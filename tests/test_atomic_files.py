"""biomarker.atomic_files: the one 'whole file or none' writer the store, the ONNX cache and the report share."""

from pathlib import Path

import pytest

from biomarker.atomic_files import SUFFIX, replaced_atomically, write_atomically
from biomarker.store.temporaries import sweep_dead_writers


def test_a_write_lands_whole_and_leaves_no_temporary(tmp_path: Path):
    target = tmp_path / "deep" / "report.pdf"
    write_atomically(target, b"%PDF-1.7 whole", durable=True)
    assert target.read_bytes() == b"%PDF-1.7 whole"
    assert list(tmp_path.rglob(f"*{SUFFIX}")) == []


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path: Path):
    target = tmp_path / "graph.onnx"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="exporter died"):
        with replaced_atomically(target) as temporary:
            temporary.write_bytes(b"half")
            raise RuntimeError("exporter died")
    assert target.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [target]


def test_the_temporary_is_named_for_its_writer_so_the_sweep_spares_a_live_one(tmp_path: Path):
    target = tmp_path / "clip.wav"
    with replaced_atomically(target) as temporary:
        assert temporary.parent == tmp_path and temporary.name.startswith(".clip.wav.") and temporary.name.endswith(SUFFIX)
        assert sweep_dead_writers(tmp_path) == [] and temporary.exists()  # this process is alive: its work stays
        temporary.write_bytes(b"RIFF")
    assert target.read_bytes() == b"RIFF"
