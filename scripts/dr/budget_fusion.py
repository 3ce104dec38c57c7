"""Experiment (issue 22): late fusion that fits the app's scoring budget.

`late_fusion.py` found that the MFCC-gram Transformer's probe adds to SSAMBA-tiny's on telephone audio (+0.027 and
+0.040 AUROC), but SSAMBA's 12 blocks and the MFCC-gram Transformer's 3 cost about 280 ms of forward per 10 s clip
at 2 threads, against a 150 ms budget for bytes -> stored row. Cut to SSAMBA-tiny's first 6 blocks and the
MFCC-gram Transformer's first block, the pair costs about 100 ms (measured, 2 threads, eager, on the Xeon:
SSAMBA-6 about 50 ms, MFCC-gram-1 about 50 ms). Their statistics are the stored ones (`layer_sets.sh`): each
block's output mean and std, without the final norm's tokens. The rule, fixed before any independent set is scored
for these variants:

    each probe as in late_fusion.py (C from {0.01, 0.1} by its pooled validation subject AUROC); among the
    in-budget candidates (SSAMBA-6 alone, MFCC-gram-1 alone, their late fusion), choose the best pooled validation
    subject AUROC; its threshold for sensitivity 0.90 on the pooled validation subjects. The reference is SSAMBA-12
    (`ri-screener-ssamba@3`'s input, every layer); paired AUROC differences against it on the independent sets.

    python scripts/dr/budget_fusion.py            # validation only
    python scripts/dr/budget_fusion.py --report   # + the independent sets, once, every candidate described
"""
import numpy as np

from domain_select import ENCODERS, SETS, load_sets
from late_fusion import run

PREFIXES = {"ssamba6": ("ssamba", 6), "mfccgram1": ("mfccgram", 1)}  # name -> (encoder, first blocks kept)
CANDIDATES = (("ssamba6",), ("mfccgram1",), ("ssamba6", "mfccgram1"))
REFERENCE = ("ssamba",)  # all 12 blocks and the final tokens: @3's input


def add_prefixes(sets: dict) -> None:
    """Each set gains the first blocks' mean and std of an encoder, as `load_sets` lays out a whole encoder."""
    for name, (encoder, blocks) in PREFIXES.items():
        for split in SETS:
            stored = np.load(f"{ENCODERS[encoder]}/{split}.npz")
            assert (stored["paths"] == sets[split]["paths"]).all(), f"{encoder} {split}: rows differ"
            n = len(stored["paths"])
            sets[split][name] = np.concatenate([stored["mean"][:, :blocks].reshape(n, -1),
                                                stored["std"][:, :blocks].reshape(n, -1)], 1)


def main() -> None:
    sets = load_sets(("ssamba", "mfccgram"))
    add_prefixes(sets)
    run(sets, ("ssamba", *PREFIXES), (REFERENCE, *CANDIDATES), CANDIDATES, REFERENCE, "runs/dr/budget_fusion.json")


if __name__ == "__main__":
    main()
