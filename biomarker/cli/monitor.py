"""CLI command: `biomarker monitor --since --until [--site]` — drift of each site's weeks against the validation
reference of the model version that scored them; exit code 2 and one `drift_alert` audit event per alert."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Optional

import typer

ALERT_EXIT_CODE = 2


def monitor(
    since: datetime = typer.Option(..., "--since", formats=["%Y-%m-%d"], help="First day (UTC), inclusive."),
    until: datetime = typer.Option(..., "--until", formats=["%Y-%m-%d"], help="Last day (UTC), inclusive."),
    site: Optional[str] = typer.Option(None, "--site", help="Only this site."),
    out: Path = typer.Option(Path("runs/monitor"), "--out", help="Folder for drift.md, drift.json and one PNG per site."),
    audit: bool = typer.Option(True, "--audit/--no-audit", help="Write a drift_alert audit event per alert."),
) -> None:
    """Recordings, refusals by reason, SNR/duration/score distributions and referral rate per site and week, with
    PSI and KS against the model's validation reference; an alert exits with code 2."""
    import json

    from biomarker.cli.model_audit import audit_model_change
    from biomarker.governance.drift import DriftBounds, markdown, site_png, weekly_drift
    from biomarker.governance.reference import references_for
    from biomarker.models.catalog import Catalog
    from biomarker.settings import Settings
    from biomarker.store import Store, UserInfo
    from biomarker.store.monitoring import refusals, screenings

    start, end = since, datetime.combine(until.date() + timedelta(days=1), time.min)
    operator = UserInfo.local_operator()
    store = Store(Settings.from_env())
    try:
        rows = screenings(store, viewer=operator, since=start, until=end, site=site)
        refused = refusals(store, viewer=operator, since=start, until=end, site=site)
    finally:
        store.close()
    references, errors = references_for(Catalog(), (row.model for row in rows))
    for model, error in errors.items():
        typer.echo(f"{model}: {error}", err=True)
    bounds = DriftBounds()
    weeks = weekly_drift(rows, refused, references, bounds)
    table = markdown(weeks, bounds)
    out.mkdir(parents=True, exist_ok=True)
    plots = [site_png(name, weeks, rows, references, bounds, out / f"drift-{name}.png")
             for name in sorted({w.site for w in weeks if w.recordings})]
    (out / "drift.md").write_text(f"# Drift {since.date()} to {until.date()}\n\n{table}\n"
                                  + "".join(f"\n![{p.name}]({p.name})\n" for p in plots))
    (out / "drift.json").write_text(json.dumps({"since": since.date().isoformat(), "until": until.date().isoformat(),
                                                "site": site, "bounds": bounds.__dict__,
                                                "weeks": [w.as_dict() for w in weeks]}, indent=2))
    typer.echo(table if weeks else f"no recordings or refusals between {since.date()} and {until.date()}")
    typer.echo(f"wrote {out / 'drift.md'}, {out / 'drift.json'} and {len(plots)} PNG(s)")
    alerts = [w for w in weeks if w.alerts]
    if alerts:
        for week in alerts:
            typer.echo(f"ALERT {week.site} week of {week.week}: {'; '.join(week.alerts)}", err=True)
            if audit:
                audit_model_change("drift_alert", week.model, week.alert_payload())
        raise typer.Exit(code=ALERT_EXIT_CODE)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("monitor")(monitor)
