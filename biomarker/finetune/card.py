"""Ship a fine-tuning run as `pretrained/<name>/`: fp16 weights, config, calibration, card with measured table.

WHY a generated card: every number in it comes from the run's summary.json files, so the card cannot drift from
what was measured; the statements of what the model must not be used for are part of the template, not optional.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any, Mapping

from biomarker.cohorts.manifest import read_manifest, select_split
from biomarker.evaluate.compare import compare_runs, markdown
from biomarker.models.screening import SNR_RANGE_DB, SNR_REFERENCE_DB, SNR_SCALE_DB, ScreeningModel

SNR_TERM = (f"(clip(SNR, {SNR_RANGE_DB[0]:g}, {SNR_RANGE_DB[1]:g} dB) - {SNR_REFERENCE_DB:g}) / {SNR_SCALE_DB:g}")

CLEAN, NOISY = "synthetic-train test", "synthetic-train-noisy test"
HELDOUT_CLEAN, HELDOUT_NOISY = "synthetic-heldout (all rows)", "synthetic-heldout-noisy (all rows)"
REAL_HEALTHY, REAL_MARKED = "real-heldout healthy", "real-heldout marked"


def _auroc(summary: Mapping, name: str) -> str:
    metrics = summary.get("sets", {}).get(name)
    if not metrics:
        return "–"
    low, high = metrics["auroc_ci"]
    return f"{metrics['auroc']:.3f} [{low:.3f}, {high:.3f}]"


def _flagged(summary: Mapping, name: str) -> str:
    rate = summary.get("flag_rates", {}).get(name)
    return "–" if not rate else f"{rate['flagged']:.0%} of {rate['n']}"


def comparison_table(runs: Mapping[str, Mapping]) -> str:
    """Markdown: one row per run (label -> summary.json), same test sets, subject-level AUROC [bootstrap 95% CI]."""
    header = (
        "| model | trainable % | train recs | clean test AUROC | noisy test AUROC | held-out synth (clean / noisy) | "
        "real healthy flagged | real + markers detected |\n|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for label, s in runs.items():
        share = s.get("trainable_percent")
        held = f"{_auroc(s, HELDOUT_CLEAN)} / {_auroc(s, HELDOUT_NOISY)}"
        rows.append(
            f"| {label} | {'–' if share is None else f'{share:.1f}'} | {s.get('train_recordings', '–')} | {_auroc(s, CLEAN)} | "
            f"{_auroc(s, NOISY)} | {held} | {_flagged(s, REAL_HEALTHY)} | {_flagged(s, REAL_MARKED)} |"
        )
    return header + "\n".join(rows) + "\n"


def paired_comparisons(run_dir: Path, rivals: Mapping[str, str | Path], resamples: int = 2000) -> str:
    """Markdown: this run minus each rival (label -> its run folder), AUROC per set both measured, with a paired
    bootstrap CI over the same subjects (`biomarker compare`): whether the model beats a baseline or only ties."""
    sections = [f"### This model vs {label}\n\n" + markdown(compare_runs(run_dir, rival, resamples), "this model", label)
                for label, rival in rivals.items()]
    return "\n".join(sections)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ship(run_dir: str | Path, destination: str | Path, runs: Mapping[str, Mapping], *, notes: str = "", version: str | None = None,
         rivals: Mapping[str, str | Path] | None = None) -> Path:
    """Copy the run's bundle to `destination` with calibration.json and a card holding the measured tables, and
    with `rivals` (label -> measured run folder, e.g. the baselines trained on the same data) the paired
    differences against each.

    `version` replaces the bundle's version in config.json: a shipped name never reuses a version for other
    weights (scores in the audit trail name `name@version`)."""
    run_dir, destination = Path(run_dir), Path(destination)
    summary = json.loads((run_dir / "summary.json").read_text())
    destination.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run_dir / "bundle" / "model.safetensors", destination / "model.safetensors")
    config = json.loads((run_dir / "bundle" / "config.json").read_text())
    config["version"] = version or config["version"]
    (destination / "config.json").write_text(json.dumps(config, indent=2))
    calibration = {
        **summary["operating_point"],
        "scoring": summary["scoring"],
        "fitted_on": "validation split of the SYNTHETIC training cohort (speaker-disjoint from test)",
        "note": f"threshold applies to the calibrated probability sigmoid(logit / temperature + bias + snr_slope * "
                f"{SNR_TERM}), SNR being the quality gate's estimate; the same values are in config.json cohorts",
    }
    (destination / "calibration.json").write_text(json.dumps(calibration, indent=2))
    report = (run_dir / "report" / "report.md").read_text()
    manifest = Path(summary["config"]["manifest"])  # absent when shipping a run made on another machine
    trained_on = sorted({item.cohort for item in select_split(read_manifest(manifest), "train")}) if manifest.is_file() else []
    summary = {**summary, "name": config["name"], "version": config["version"], "training_cohorts": trained_on}
    comparison = comparison_table(runs) + ("\n" + paired_comparisons(run_dir, rivals) if rivals else "")
    card = render_card(summary, sha256_of(destination / "model.safetensors"), comparison, report, notes)
    (destination / "card.md").write_text(card)
    return destination


# What each training cohort is, for the card (noisy copies are named after their clean cohort).
TRAINING_COHORTS = {
    "synthetic-train": "espeak-ng speakers (pt-BR and 3 other languages, 14 training voice variants and 12+ sentences), "
                       "patients with RI markers of severity 0.15-1 (mild included), ward noise on both classes (clean + noisy "
                       "copies); data_cards/synthetic-ri-train.md",
    "synthetic-voices": "the same generator with 40 more training-only espeak-ng voices (breathy and weak-voiced ones among "
                        "them, never a held-out voice), seed 5; added because the model keyed partly on voice timbre "
                        "(held-out controls of breathy voices looked like patients); data_cards/synthetic-ri-voices.md",
    "real-train": "REAL voices (asterisk en-US Allison, fillets-ng Czech actors, klettres de/it/nl/ru) cut into 3-6 s "
                  "clips; half with the same RI markers applied, the other half through the same processing at severity 0; "
                  "half of all clips with ward noise. Added so the model learns the breathing markers rather than "
                  "\"espeak voice\"; data_cards/synthetic-ri-real-voices.md",
}


def training_data(cohorts: list[str]) -> str:
    """One bullet per training cohort (clean and noisy copies together), described when the card knows it."""
    names = sorted({c.removesuffix("-noisy") for c in cohorts})
    return "\n".join(f"- `{name}`: {TRAINING_COHORTS.get(name, 'see its data card in data_cards/')}" for name in names) or "- (not recorded)"


def render_card(summary: Mapping, sha256: str, comparison: str, report: str, notes: str) -> str:
    point = summary["operating_point"]
    flags = summary.get("flag_rates", {})
    flag_lines = "\n".join(f"- {name}: {v['flagged']:.1%} of {v['n']} subjects flagged positive (label {v['label']})" for name, v in flags.items())
    detailed = report.split("\n", 1)[1] if "\n" in report else report
    return f"""# {summary.get('name', 'ri-screener')} version {summary.get('version', '?')} — respiratory-insufficiency screening model (trained on SYNTHETIC data)

**Not clinically validated.** This model was trained and tested only on SYNTHETIC speech (espeak-ng voices, and
real voices with synthetic breathing markers). It screens: a positive result means "refer for an SpO2 check
(pulse oximetry; RI is operationally SpO2 < 92 %)". It never estimates SpO2 and must not be used to diagnose,
to rule out respiratory insufficiency, or to make any treatment decision.

- weights: `model.safetensors` (fp16), sha256 `{sha256}`
- encoder: {summary['encoder']} {summary.get('encoder_overrides') or ''}; method `{summary['method']}`
  ({summary['trainable_percent']:.1f} % of the inference path trained, {summary['trainable_params']:,} parameters)
- recording score: `{summary['scoring']}` (chosen on validation: {json.dumps(summary['validation_auroc'])})
- calibration (fitted on validation recordings): temperature {point['temperature']:.3f}, bias {point.get('bias', 0.0):+.3f},
  SNR slope {point.get('snr_slope', 0.0):+.3f} (p = sigmoid(logit / T + b + s · {SNR_TERM}), SNR the
  quality gate's estimate of the recording: ward noise shifts the logits of both classes; s is how the logits
  drift with SNR within each class, so it corrects for noise and cannot rank patients by SNR); operating threshold
  {point['threshold']:.3f} on the calibrated probability, chosen on validation subjects for sensitivity >= {point['target_sensitivity']:.2f}
- subjects with several recordings (fitted on validation subjects): p = sigmoid({point.get('subject_scale', 1.0):.3f} · mean log-odds
  of their recordings {point.get('subject_shift', 0.0):+.3f}); a single recording keeps its own probability
- trained: {summary['train_recordings']} recordings, {summary['steps']} steps ({summary['stop_reason']}),
  early stopping on validation subject AUROC; class-balanced BCE.

## Training data (all SYNTHETIC; see data_cards/)
{training_data(summary.get('training_cohorts', []))}

## Measured (subject level, bootstrap 95 % CI; SYNTHETIC test sets)
{detailed}

Single-class checks (share flagged at the operating threshold):
{flag_lines or '- none'}

## Comparison (same test sets)
{comparison}
{notes}

## Must not be used for
- any clinical decision, diagnosis, triage without pulse oximetry, or SpO2 estimation;
- real patients' speech without a clinical validation study (real RI speech differs from these rules:
  cough, hoarseness, comorbidities, microphones, real wards);
- languages, ages or recording set-ups that were never evaluated.
"""


def cohort_card(model: ScreeningModel, fit: Any, manifest: str | Path, parent: str | None, synthetic: bool) -> str:
    """A continual-learning version's card (`biomarker.finetune.continual.StageFit` `fit`): what it adds, what it was trained on, measured numbers, what it must not do."""
    label, point = "SYNTHETIC " if synthetic else "", fit.operating_point
    cohorts = ", ".join(f"`{c}`" + (" (default)" if c == model.default_cohort else "") for c in model.cohorts)
    return "\n".join(
        [
            f"# {model.name} — respiratory-insufficiency screening bundle",
            "",
            f"Adds cohort `{fit.cohort}` ({fit.method}) to `{parent or 'a new bundle'}`. Cohorts: {cohorts}.",
            "Pick a cohort (task id) when scoring; earlier cohorts' outputs are bit-identical to the parent's"
            + (" (checked before publishing)." if fit.method != "full" else " — NOT for `full`: the encoder moved."),
            "",
            "## Training data",
            "",
            f"- {label}cohort manifest `{manifest}` (train rows fit the {fit.method} parameters; validation rows "
            "chose the best step and fitted the calibration and threshold).",
            *(
                ["- The data are SYNTHETIC (espeak-ng voices with simulated breathing markers); no number here says "
                 "anything about real patients."]
                if synthetic
                else []
            ),
            "",
            "## Measured (validation split of this cohort; test numbers are in the forgetting report)",
            "",
            f"- Subject-level validation AUROC: {fit.val_auroc:.3f}",
            f"- Trainable for this cohort: {fit.trainable_params:,} of {fit.total_params:,} parameters on its path "
            f"({100.0 * fit.trainable_params / fit.total_params:.2f}%)",
            f"- Calibration (validation recordings): temperature {point.temperature:.3f}, bias {point.bias:+.3f}, "
            f"SNR slope {point.snr_slope:+.3f} (p = sigmoid(logit / T + b + s · {SNR_TERM}), SNR the quality "
            f"gate's estimate of the recording); threshold {point.threshold:.3f} on that probability "
            f"(sensitivity ≥ {point.target_sensitivity:.2f} on validation subjects)",
            "",
            "## Must not be used for",
            "",
            "- Diagnosis, or estimating SpO2: it screens (refer for an SpO2 check).",
            "- Any clinical decision while it is trained on synthetic data or is not clinically validated.",
            "- A cohort it was not adapted to without choosing the closest cohort knowingly and checking it.",
            "",
        ]
    )
