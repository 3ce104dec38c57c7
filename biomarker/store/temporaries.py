"""The sweep that removes the temporaries a killed writer left.

Every file the store writes (a recording, a spooled result) goes through `biomarker.atomic_files`: a temporary
beside it, renamed into place. A writer killed between the two (SIGKILL, power loss) leaves the temporary behind.
Its name carries the writer's process id, so a later process can tell a dead writer's leftover from a live
writer's work in progress and remove only the former.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from biomarker.atomic_files import SUFFIX

STALE_AFTER_S = 24 * 3600.0  # a temporary this old is no one's work in progress (its pid may have been reused)


def _writer_pid(temporary: Path) -> int | None:
    parts = temporary.name.split(".")  # "", <sha>, <ext>, <pid>, <random>, "tmp" (the file's own dots vary)
    return int(parts[-3]) if len(parts) >= 4 and parts[-3].isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def sweep_dead_writers(folder: Path) -> list[Path]:
    """Remove the temporaries under `folder` whose writer has died (or that are over a day old); return them.

    A temporary without a process id in its name (written before names carried one) counts as dead: no
    writer of this version makes one. Process ids are per host: the data folder belongs to one server (as the
    compose files deploy it), not to writers on several machines sharing it.
    """
    if not folder.is_dir():
        return []
    removed = []
    now = time.time()
    for temporary in folder.rglob(f"*{SUFFIX}"):  # the spool's older `<uid>.tmp` too
        pid = _writer_pid(temporary)
        try:
            stale = now - temporary.stat().st_mtime > STALE_AFTER_S
        except FileNotFoundError:  # its writer renamed it into place just now
            continue
        if pid is None or stale or not _alive(pid):
            temporary.unlink(missing_ok=True)
            removed.append(temporary)
    return removed
