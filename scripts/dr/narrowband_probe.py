"""Experiment (issue 22): does SSAMBA-tiny's probe refer healthy real voices because of their band?

A description of `ri-screener-ssamba@3`'s input on the real independent set (SSAMBA-12 probe at its validation
threshold; it chose nothing): every healthy real voice it refers in the wideband set comes from an 8 kHz source
(20 of 52: asterisk es-CO, fr, it and codec2), none of the 12 from 16 kHz sources; through the telephone channel even
the 16 kHz sources' healthy voices are referred (5 of 8). If the probe reads "little energy above 4 kHz" as a
marker, the remedy is to give it no band to read: every clip, in training and in scoring, passed through 8 kHz first
(`layer_features.py ... narrowband`), so wideband and telephone audio look alike above 4 kHz. The rule, fixed before
any independent set is scored for the narrowband probe:

    the SSAMBA-12 layer-statistics probe on wideband inputs (@3's) and on narrowband inputs, each with C from
    {0.01, 0.1} by its pooled validation subject AUROC; choose the input with the better pooled validation subject
    AUROC (the rule that tracked transfer in stop 36); thresholds for sensitivity 0.90 on the pooled validation
    subjects; both described on the independent sets, with paired AUROC differences.

    bash scripts/dr/layer_sets.sh runs/dr/layers-narrowband 12 pretrained/ssamba-tiny narrowband
    python scripts/dr/narrowband_probe.py            # validation only
    python scripts/dr/narrowband_probe.py --report   # + the independent sets, once
"""
import json
import sys
from pathlib import Path

import domain_select
from domain_select import load_sets
from late_fusion import best_probe, describe, validate

domain_select.ENCODERS["narrowband"] = "runs/dr/layers-narrowband"  # this experiment's stored statistics only
CANDIDATES = (("ssamba",), ("narrowband",))


def main() -> None:
    sets = load_sets(("ssamba", "narrowband"))
    probes, strengths = {}, {}
    for encoder in ("ssamba", "narrowband"):
        strengths[encoder], probes[encoder] = best_probe(encoder, sets)
    scores, validation, thresholds = validate(probes, CANDIDATES, sets)
    chosen = max(CANDIDATES, key=validation.get)
    print(f"the rule chooses {' + '.join(chosen)}")
    if "--report" not in sys.argv:
        return
    summary = {"strengths": strengths, **describe(scores, validation, thresholds, chosen, CANDIDATES[0], sets)}
    Path("runs/dr/narrowband_probe.json").write_text(json.dumps(summary, indent=2, default=float))


if __name__ == "__main__":
    main()
