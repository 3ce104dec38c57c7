"""`biomarker score` across processes and nodes under `torchrun`: each rank scores its share into its own part file,
rank 0 merges the parts into `--out` in input order, and a rerun resumes from what the parts already hold.

WHY torchrun and files, not a collective: torchrun is the engine that starts one process per core or GPU on every
node, sets RANK / WORLD_SIZE, and restarts a failed group (`--max-restarts`); scoring needs nothing else from it.
Ranks never talk: a share is known from the rank alone (every `i`-th input, so long and short recordings spread
evenly), a rank's finished rows are its part file (`scores.csv.part-00001-of-00004`, flushed row by row), and its
`.done` marker says the share is complete. A process-group barrier would time out (30 min by default) while a slow
node finishes; rank 0 instead waits for the markers, then writes `--out` through a temporary file and removes the
parts. On several nodes, `--out` must be on a file system every node sees (NFS, Lustre, a mounted bucket).

Resume: a restarted rank keeps every complete row of its part (a torn last line is dropped) whose index and path
match this run's inputs, and scores only the rest. Pure standard library: no torch here.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from biomarker.records import BiomarkerError

INDEX_COLUMN = "index"
POLL_S = 0.5


class ShardError(BiomarkerError):
    """Parts that do not belong to this run (other inputs, another world size) or a merge that would lose rows."""


@dataclass(frozen=True)
class Shard:
    """This process's place in the run: `rank` of `world_size` (torchrun's RANK and WORLD_SIZE)."""

    rank: int
    world_size: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "Shard | None":
        """The shard torchrun describes, or None outside torchrun (the plain single-process path)."""
        if "WORLD_SIZE" not in env:
            return None
        shard = cls(int(env.get("RANK", "0")), int(env["WORLD_SIZE"]))
        if not 0 <= shard.rank < shard.world_size:
            raise ShardError(f"RANK={shard.rank} is outside WORLD_SIZE={shard.world_size}")
        return shard

    def indices(self, total: int) -> range:
        """This rank's inputs: every `world_size`-th one from `rank` (lengths spread evenly over ranks)."""
        return range(self.rank, total, self.world_size)

    def part(self, out: Path) -> Path:
        return out.with_name(f"{out.name}.part-{self.rank:05d}-of-{self.world_size:05d}")


def done_marker(part: Path) -> Path:
    return part.with_name(part.name + ".done")


def read_part(part: Path, paths: Sequence[str], columns: Sequence[str]) -> dict[int, dict]:
    """The complete rows of a part file, by input index; a torn last line (a kill mid-write) is dropped. A row whose
    index or path does not match `paths` means the part came from another run: an error, never a silent mix."""
    if not part.exists():
        return {}
    text = part.read_text(encoding="utf-8")
    complete = text[: text.rfind("\n") + 1]  # rows are newline-terminated; anything after the last one is torn
    rows: dict[int, dict] = {}
    reader = csv.DictReader(complete.splitlines())
    if reader.fieldnames is not None and list(reader.fieldnames) != [INDEX_COLUMN, *columns]:
        raise ShardError(f"{part}: columns {reader.fieldnames}, expected {[INDEX_COLUMN, *columns]}")
    for row in reader:
        index = int(row.pop(INDEX_COLUMN))
        if not 0 <= index < len(paths) or row["path"] != paths[index]:
            raise ShardError(f"{part}: row {index} ({row['path']!r}) is not input {index} of this run; "
                             "remove the part files of the earlier run or rerun it with its own inputs")
        rows[index] = row
    return rows


def write_share(part: Path, kept: Mapping[int, dict], rows: Iterable[tuple[int, dict]], columns: Sequence[str]) -> int:
    """Rewrite the part with the `kept` rows (dropping any torn tail), then append each new row as it comes,
    flushed at once, and leave the `.done` marker. Returns the number of new rows."""
    done_marker(part).unlink(missing_ok=True)
    temporary = part.with_name(part.name + ".tmp")
    with temporary.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=[INDEX_COLUMN, *columns], lineterminator="\n")
        writer.writeheader()
        writer.writerows({INDEX_COLUMN: index, **row} for index, row in sorted(kept.items()))
    os.replace(temporary, part)
    count = 0
    with part.open("a", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=[INDEX_COLUMN, *columns], lineterminator="\n")
        for index, row in rows:
            writer.writerow({INDEX_COLUMN: index, **row})
            handle.flush()
            count += 1
    done_marker(part).write_text(f"{len(kept) + count}\n", encoding="utf-8")
    return count


def wait_for_parts(out: Path, world_size: int, *, poll_s: float = POLL_S) -> list[Path]:
    """Rank 0 waits until every rank's `.done` marker exists (torchrun stops the group if a rank dies)."""
    parts = [Shard(rank, world_size).part(out) for rank in range(world_size)]
    while not all(done_marker(part).exists() for part in parts):
        time.sleep(poll_s)
    return parts


def merge_parts(out: Path, parts: Sequence[Path], paths: Sequence[str], columns: Sequence[str],
                write: Callable[[Iterator[dict], object], int]) -> int:
    """Every input's row, in input order, into `out` (through a temporary file, so `out` is whole or absent); the
    parts and markers are removed only after. A missing row is an error naming it, not a shorter CSV."""
    rows: dict[int, dict] = {}
    for part in parts:
        rows.update(read_part(part, paths, columns))
    missing = [index for index in range(len(paths)) if index not in rows]
    if missing:
        raise ShardError(f"{len(missing)} input(s) have no row in the parts, first {paths[missing[0]]!r}; "
                         "rerun the same command to score them")
    temporary = out.with_name(out.name + ".tmp")
    with temporary.open("w", newline="", encoding="utf-8") as handle:
        count = write((rows[index] for index in range(len(paths))), handle)
    os.replace(temporary, out)
    for part in parts:
        part.unlink()
        done_marker(part).unlink()
    return count
