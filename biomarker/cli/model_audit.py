"""The audit event a CLI model change leaves (`model_calibrated`, `model_promoted`), shared by `calibrate` and
`models promote`, so the trail says which model and calibration scored each later result."""

from __future__ import annotations

import typer


def audit_model_change(action: str, ref: str, payload: dict) -> None:
    """Append the event in the configured store as the shell's operator; a database that is down does not undo
    the change (the catalog already holds it), the command says the event is missing."""
    from biomarker.settings import Settings
    from biomarker.store import Store, UserInfo
    from biomarker.store.repository import UNREACHABLE_ERRORS

    store = Store(Settings.from_env(), migrate=False)
    try:
        store.record_model_event(actor=UserInfo.local_operator(), action=action, ref=ref, payload=payload)
        typer.echo(f"audit: {action} event written")
    except UNREACHABLE_ERRORS:
        typer.echo(f"audit: the database is unreachable; no {action} event was written", err=True)
    finally:
        store.close()
