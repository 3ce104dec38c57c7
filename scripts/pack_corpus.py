"""Pack a subset of a built corpus as Ogg/Opus for a machine without network (the lent GPU machine).

Why: the corpus is rebuilt from Debian packages, which a GPU machine cannot fetch, and the whole FLAC corpus
(about 10 h, 550 MB) is too large to travel with the checkout. Opus at its default rate keeps fbank/MFCC
features close to the original at about 3 kB per second, so a few hours fit in tens of MB. The subset takes
sources round-robin, so every voice and language keeps its share. Paths are relative to the new manifest.

    python scripts/pack_corpus.py data/corpus data/corpus-opus --train-hours 3 --held-out-hours 0.5
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import shutil
from collections import defaultdict
from pathlib import Path

import soundfile as sf
from tqdm import tqdm


def round_robin(rows: list[dict], hours: float) -> list[dict]:
    """Rows taken one per source in turn until `hours` of audio are chosen."""
    by_source: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_source[row["source"]].append(row)
    chosen, total_s = [], 0.0
    for batch in itertools.zip_longest(*by_source.values()):
        for row in filter(None, batch):
            if total_s >= hours * 3600:
                return chosen
            chosen.append(row)
            total_s += float(row["duration_s"])
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--train-hours", type=float, default=3.0)
    parser.add_argument("--held-out-hours", type=float, default=0.5)
    args = parser.parse_args()
    with open(args.source / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    fields = list(rows[0])
    chosen = round_robin([r for r in rows if r["split"] == "train"], args.train_hours)
    chosen += round_robin([r for r in rows if r["split"] != "train"], args.held_out_hours)
    (args.out / "audio").mkdir(parents=True, exist_ok=True)
    packed = []
    for row in tqdm(chosen, desc="opus"):
        target = Path("audio") / Path(row["path"]).with_suffix(".opus").as_posix().replace("/", "__")
        if not (args.out / target).exists():
            samples, rate = sf.read(args.source / row["path"], dtype="float32")
            sf.write(args.out / target, samples, rate, format="OGG", subtype="OPUS")
        packed.append({**row, "path": target.as_posix()})
    with open(args.out / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(packed)
    if (args.source / "summary.json").exists():
        shutil.copy(args.source / "summary.json", args.out / "summary.json")
    hours = sum(float(r["duration_s"]) for r in packed) / 3600
    size_mb = sum(p.stat().st_size for p in (args.out / "audio").iterdir()) / 2**20
    print(json.dumps({"files": len(packed), "hours": round(hours, 2), "audio_mb": round(size_mb, 1)}))


if __name__ == "__main__":
    main()
