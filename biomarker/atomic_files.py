"""Files written whole or not at all: a temporary beside the target, renamed into place.

Readers of a recording, a spooled result, a PDF report or a cached ONNX graph must see the whole file or none: a
writer killed half-way, or a full disk, may never leave a truncated file under the real name. Every writer in the
package goes through `write_atomically` (bytes) or `replaced_atomically` (a writer that wants a file name), so the
rule lives once. A temporary is named `.<name>.<pid>.<random>.tmp`: unique per writer, and its process id lets
`biomarker.store.temporaries` sweep what a dead writer left without touching a live writer's work in progress.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

SUFFIX = ".tmp"


def make_temporary(path: Path) -> tuple[int, Path]:
    """`mkstemp` beside `path`, named `.<name>.<pid>.<random>.tmp`: unique per writer, and sweepable."""
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=SUFFIX)
    return handle, Path(name)


@contextlib.contextmanager
def _renamed_into_place(path: Path) -> Iterator[tuple[int, Path]]:
    """(open handle, temporary) beside `path`; renamed onto `path` when the block ends, removed when it raises
    anything (the error is re-raised unchanged). The caller closes the handle."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = make_temporary(path)
    try:
        yield handle, temporary
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def replaced_atomically(path: Path) -> Iterator[Path]:
    """Yield an empty temporary beside `path` (its folder is created) for a writer that wants a file name; it
    becomes `path` when the block ends, and is removed when the block raises."""
    with _renamed_into_place(path) as (handle, temporary):
        os.close(handle)
        yield temporary


def write_atomically(path: Path, data: bytes, durable: bool = False) -> None:
    """Write `data` to `path` through a temporary; `durable` fsyncs it before the rename (for the only copy of a
    result, where a power cut after the rename must not leave an empty file)."""
    with _renamed_into_place(path) as (handle, _), os.fdopen(handle, "wb") as stream:
        stream.write(data)
        if durable:
            stream.flush()
            os.fsync(stream.fileno())
