"""The audit event a CLI model change leaves (`model_calibrated`, `model_promoted`, `model_promoted_override`,
`model_promotion_refused`, `drift_alert`), shared by `calibrate`, `models promote` and `monitor`, so the trail says
which model and calibration scored each later result and which gate decisions and alerts were raised."""

from __future__ import annotations

import typer

from biomarker.records import BiomarkerError


class AuditUnavailableError(BiomarkerError, RuntimeError):
    """A required audit event could not be written (the database is unreachable): the change must not happen."""


def audit_model_change(action: str, ref: str, payload: dict, *, required: bool = False) -> None:
    """Append the event in the configured store as the shell's operator.

    Not `required` (a calibration already published): a database that is down does not undo the change, the
    command says the event is missing. `required` (a gate decision, which happens only once recorded): it raises
    `AuditUnavailableError` instead."""
    from biomarker.settings import Settings
    from biomarker.store import Store, UserInfo
    from biomarker.store.repository import UNREACHABLE_ERRORS

    store = Store(Settings.from_env(), migrate=False)
    try:
        store.record_model_event(actor=UserInfo.local_operator(), action=action, ref=ref, payload=payload)
        typer.echo(f"audit: {action} event written")
    except UNREACHABLE_ERRORS as error:
        if required:
            raise AuditUnavailableError(f"the database is unreachable, so the {action} event for {ref} cannot be "
                                        "written; nothing was changed") from error
        typer.echo(f"audit: the database is unreachable; no {action} event was written", err=True)
    finally:
        store.close()
