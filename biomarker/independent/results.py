"""Collect the measured breakdowns of several models on the independent sets into one small JSON
(docs/results/independent_eval.json), headline numbers first: sensitivity and specificity at each model's own
threshold, AUROC with its CI, mild-band sensitivity, then per-source and per-ambience rates."""

from __future__ import annotations

from pathlib import Path

from biomarker.independent.breakdown import breakdown


def _short(name: str) -> str:
    return name.replace(" (all rows)", "")


def collect(runs: dict[str, str | Path], manifests: list[str | Path]) -> dict:
    """`runs`: model label -> evaluation folder (evaluate --out or a baseline run); every manifest is broken down
    in every folder that measured it."""
    out: dict = {"models": {}}
    for label, folder in runs.items():
        sets: dict = {}
        for manifest in manifests:
            try:
                measured = breakdown(folder, manifest)["sets"]
            except Exception as error:  # a folder that did not measure this manifest: say so, do not guess
                sets[f"missing: {manifest}"] = str(error)[:200]
                continue
            for name, b in measured.items():
                mild = b["sensitivity_by_band"]["mild"]
                sets[_short(name)] = {
                    "sensitivity": round(b["sensitivity"], 4), "sensitivity_ci": [round(x, 4) for x in b["sensitivity_ci"]],
                    "specificity": round(b["specificity"], 4), "specificity_ci": [round(x, 4) for x in b["specificity_ci"]],
                    "threshold": round(b["threshold"], 4),
                    "auroc": round(b["auroc"], 4), "auroc_ci": [round(x, 4) for x in b["auroc_ci"]],
                    "mild_sensitivity": mild, "sensitivity_by_band": b["sensitivity_by_band"],
                    "n_patients": b["n_patients"], "n_controls": b["n_controls"],
                    "by_source": b["subgroups"].get("source"), "by_ambient": b["subgroups"].get("ambient"),
                    "by_language": b["subgroups"].get("language"), "by_sex": b["subgroups"].get("sex"),
                }
        out["models"][label] = sets
    return out
