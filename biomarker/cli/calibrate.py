"""CLI command: `biomarker calibrate --manifest site.csv --model NAME [--cohort C] [--target-sensitivity 0.90]
[--min-per-class 20] [--out-name NAME]` — a site's recalibration as a NEW model version.

Scores every row through the screener (the one inference path, quality gate included, as `biomarker evaluate`
does), refits temperature and bias on the model's logits and the threshold for the target sensitivity
(`biomarker.evaluate.site_calibration`), and publishes the result through the catalog: a new immutable version
whose parent is the scored one, with a generated card and the same facts in version.json. Nothing existing is
changed, and the default version of a name moves only with `biomarker models promote`.

Audit trail: the new version is a `model_calibrated` event in the configured store (`Store.record_model_event`,
naming the new version, its parent, the manifest's sha256 and the fitted values), beside the catalog's
version.json and card. A database that is down does not stop the calibration; the command says the event is
missing.
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Iterator

import typer

from biomarker.records import DEFAULT_MODEL

from biomarker.cli.model_audit import audit_model_change

# The screener's probability is sigmoid(logit / T + ...): scoring with T = RAW_TEMPERATURE, no bias and no SNR
# term returns sigmoid(logit / 64), whose log-odds times 64 is the logit; float32 keeps ~1e-5 of it for any
# logit of magnitude below ~1000, where T = 1 would saturate at |logit| ~ 17.
RAW_TEMPERATURE = 64.0


@contextlib.contextmanager
def _uncalibrated(model, cohort: str) -> Iterator[None]:
    """Score `cohort` with an identity calibration (temperature RAW_TEMPERATURE) and restore its spec after."""
    spec = model.cohorts[cohort]
    model.cohorts[cohort] = dataclasses.replace(spec, temperature=RAW_TEMPERATURE, bias=0.0, snr_slope=0.0)
    try:
        yield
    finally:
        model.cohorts[cohort] = spec


def calibrate(
    manifest: Path = typer.Option(..., "--manifest", help="The site's labelled sample (path,label,speaker_id,cohort[,...])."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", help="Model to recalibrate: NAME, NAME@VERSION or a bundle directory."),
    cohort: str = typer.Option(None, "--cohort", help="Bundle cohort to recalibrate (default: the model's default cohort)."),
    target_sensitivity: float = typer.Option(0.90, "--target-sensitivity", help="Sensitivity the threshold must reach on the sample."),
    min_per_class: int = typer.Option(20, "--min-per-class", help="Refuse when patients or controls number fewer subjects."),
    out_name: str = typer.Option(None, "--out-name", help="Publish under this model name (default: the source's name)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
) -> None:
    """Refit temperature, bias and threshold on a site's labelled sample and publish them as a new model version."""
    import numpy as np

    from biomarker.cohorts.manifest import check_speaker_labels, read_manifest
    from biomarker.evaluate.calibration import log_odds
    from biomarker.evaluate.site_calibration import card_text, fit_site_calibration, sample_from_scores, summary_lines, version_metrics
    from biomarker.models.catalog import Catalog, check_name, sha256_of_file
    from biomarker.records import AudioError, BiomarkerError
    from biomarker.screener import PRETRAINED_DIR, Screener

    try:
        items = read_manifest(manifest)
        check_speaker_labels(items, manifest)
        screener = Screener.load(model, device=device)
        bundle = screener.model
        chosen = bundle.resolve_cohort(cohort)
        parent = screener.model_label
        with _uncalibrated(bundle, chosen):
            results = screener.score_many([item.path for item in items], cohort=chosen)
        scored = [(item, r) for item, r in zip(items, results) if not isinstance(r, AudioError)]
        sample = sample_from_scores(
            (RAW_TEMPERATURE * log_odds(np.array([r.probability for _, r in scored]))).tolist(),
            [item.label for item, _ in scored], [item.speaker_id for item, _ in scored],
            [r.quality.snr_db for _, r in scored],
            manifest=str(manifest), manifest_sha256=sha256_of_file(manifest), n_rejected=len(items) - len(scored))
        result = fit_site_calibration(sample, bundle.cohorts[chosen], cohort=chosen,
                                      target_sensitivity=target_sensitivity, min_per_class=min_per_class)
        bundle.cohorts[chosen] = result.apply(bundle.cohorts[chosen])
        bundle.name = check_name("model name", out_name or bundle.name)
        bundle.parent = parent
        catalog = Catalog(shipped_root=PRETRAINED_DIR)
        new_ref = f"{bundle.name}@{catalog.next_version(bundle.name)}"
        published = catalog.publish(bundle, card=card_text(result, sample, parent=parent, new_name=new_ref,
                                                        synthetic=screener.trained_on_synthetic),
                                    parent=parent, cohorts=list(bundle.cohorts),
                                    metrics=version_metrics(result, sample, parent=parent))
    except BiomarkerError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    counts = result.counts
    typer.echo(f"published {published.ref} (parent {parent}) at {published.path}")
    typer.echo(f"calibrated on {manifest} (sha256 {sample.manifest_sha256[:12]}...): {counts['patients']} patients, "
               f"{counts['controls']} controls, {counts['rejected_recordings']} recording(s) refused")
    typer.echo(f"cohort {chosen}: temperature {result.temperature:.4g}, bias {result.bias:.4g}, "
               f"SNR slope {result.snr_slope:.4g} (kept), threshold {result.previous['threshold']:.4f} -> {result.threshold:.4f}")
    for line in summary_lines(result):
        typer.echo(f"  {line}")
    typer.echo("on the calibration sample itself (optimistic; a small sample's CI is wide); not clinically validated. "
               f"Measure it on held-out site data, then `biomarker models promote {published.ref}` to make it the default.")
    audit_model_change("model_calibrated", published.ref, {
        "parent": parent, "manifest_sha256": sample.manifest_sha256, "temperature": result.temperature,
        "bias": result.bias, "threshold": result.threshold})


def register(app: typer.Typer) -> None:
    """Add this module's command to the root app."""
    app.command("calibrate")(calibrate)
