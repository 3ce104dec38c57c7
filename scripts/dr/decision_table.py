"""Usage: python scripts/dr/decision_table.py RUN_DIR EVAL_NAME (evaluations in runs/dr/eval-EVAL_NAME-{real,espeak}).

The card's first table for one candidate: sens/spec at its threshold per held-out set, then AUROC, mild, goal."""
import json, sys
from pathlib import Path

run, name = Path(sys.argv[1]), sys.argv[2]   # finetune run dir (summary.json), eval name in runs/dr
GOAL_SENS, GOAL_SPEC, GOAL_AUROC, GOAL_MILD, GOAL_HEALTHY = 0.85, 0.90, 0.95, 0.60, 0.10

def ci(x): return f"[{x[0]:.3f}, {x[1]:.3f}]"

def verdict(sens, spec, auc, mild, real):
    misses = []
    if sens < GOAL_SENS: misses.append(f"sensitivity short by {GOAL_SENS - sens:.3f}")
    if spec < GOAL_SPEC: misses.append(f"specificity short by {GOAL_SPEC - spec:.3f}")
    if auc < GOAL_AUROC: misses.append(f"AUROC short by {GOAL_AUROC - auc:.3f}")
    if mild is not None and mild < GOAL_MILD: misses.append(f"mild short by {GOAL_MILD - mild:.3f}")
    if real and (1 - spec) > GOAL_HEALTHY: misses.append(f"healthy referred {1 - spec:.1%} (> 10 %)")
    return "✅ met" if not misses else "❌ " + "; ".join(misses)

rows = []
for source in ("real", "espeak"):
    b = json.loads((Path("runs/dr") / f"eval-{name}-{source}" / "breakdown.json").read_text())["sets"]
    for set_name, m in b.items():
        mild = m["sensitivity_by_band"]["mild"]
        k_pos = round(m["sensitivity"] * m["n_patients"]); k_neg = round(m["specificity"] * m["n_controls"])
        rows.append((set_name, f"**{m['sensitivity']:.3f}** {ci(m['sensitivity_ci'])} ({k_pos}/{m['n_patients']})",
                     f"{m['specificity']:.3f} {ci(m['specificity_ci'])} ({k_neg}/{m['n_controls']})",
                     f"{m['auroc']:.3f} {ci(m['auroc_ci'])}", f"{mild['rate']:.3f} ({mild['k']}/{mild['n']})",
                     verdict(m["sensitivity"], m["specificity"], m["auroc"], mild["rate"], source == "real")))
summary = json.loads((run / "summary.json").read_text())
for set_name in ("synthetic-heldout (all rows)", "synthetic-heldout-noisy (all rows)"):
    m = summary["sets"].get(set_name)
    if not m: continue
    mild = summary["sets"].get(set_name + ", mild only")
    c = m["confusion"]; pos = c["true_positive"] + c["false_negative"]; neg = c["true_negative"] + c["false_positive"]
    mc = mild["confusion"] if mild else None
    rows.append((set_name.replace(" (all rows)", "") + " (generator's own held-out cohort)",
                 f"**{m['sensitivity']:.3f}** {ci(m['sensitivity_ci'])} ({c['true_positive']}/{pos})",
                 f"{m['specificity']:.3f} {ci(m['specificity_ci'])} ({c['true_negative']}/{neg})",
                 f"{m['auroc']:.3f} {ci(m['auroc_ci'])}",
                 f"{mild['sensitivity']:.3f} ({mc['true_positive']}/{mc['true_positive'] + mc['false_negative']})" if mild else "–",
                 verdict(m["sensitivity"], m["specificity"], m["auroc"], mild["sensitivity"] if mild else None, False)))
print("| held-out set | sensitivity [95 % CI] | specificity [95 % CI] | AUROC [95 % CI] | mild (< 0.4) sensitivity | goal |")
print("|---|---|---|---|---|---|")
for r in rows: print("| " + " | ".join(r) + " |")
