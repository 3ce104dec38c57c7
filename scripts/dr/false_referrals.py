"""Description (issue 22; it chooses nothing): whom SSAMBA-12's layer-statistics probe refers on the real independent
set at its validation threshold, by source package and the source's own sample rate (one clip per subject).

    python scripts/dr/false_referrals.py [ENCODER]   # ENCODER: a name in domain_select.ENCODERS (default ssamba)
"""
import collections
import csv
import sys

import narrowband_probe  # noqa: F401 - registers the narrowband statistics' folder as an encoder name
from domain_select import load_sets
from late_fusion import best_probe
from layer_probe import subject

from biomarker.evaluate.metrics import threshold_for_sensitivity


def main() -> None:
    encoder = sys.argv[1] if len(sys.argv) > 1 else "ssamba"
    sets = load_sets((encoder,))
    _, score = best_probe(encoder, sets)
    threshold = threshold_for_sensitivity(*subject(score(sets["val"]), sets["val"]))
    meta = {f"runs/independent/real/{row['path']}": row for row in csv.DictReader(open("runs/independent/real/manifest.csv"))}
    counts = collections.defaultdict(lambda: [0, 0, 0, 0])  # healthy, healthy referred, patients, patients referred
    for path, label, logit in zip(sets["real"]["paths"], sets["real"]["labels"], score(sets["real"])):
        row = meta[str(path)]
        cell = counts[(row["cohort"], row["package"], row["origin_rate_hz"])]
        cell[2 * int(label)] += 1
        cell[2 * int(label) + 1] += int(logit >= threshold)
    print("| set | source package | source rate (Hz) | healthy referred | patients referred |")
    print("|---|---|---|---|---|")
    for (cohort, package, rate), (healthy, false, patients, true) in sorted(counts.items()):
        print(f"| {cohort} | {package} | {rate} | {false}/{healthy} | {true}/{patients} |")


if __name__ == "__main__":
    main()
