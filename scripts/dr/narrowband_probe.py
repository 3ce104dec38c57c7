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
import domain_select
from domain_select import load_sets
from late_fusion import run

domain_select.ENCODERS["narrowband"] = "runs/dr/layers-narrowband"  # this experiment's stored statistics only
CANDIDATES = (("ssamba",), ("narrowband",))


def main() -> None:
    run(load_sets(("ssamba", "narrowband")), ("ssamba", "narrowband"), CANDIDATES, CANDIDATES, CANDIDATES[0],
        "runs/dr/narrowband_probe.json")


if __name__ == "__main__":
    main()
