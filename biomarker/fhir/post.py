"""Send a transaction Bundle to a FHIR server: one POST to its base URL, with a timeout, retries and clear errors.

Why the standard library: one POST needs no client framework, and the export path stays free of new dependencies.
Retried: a connection that fails or times out, 429 and 5xx answers (the server is busy or restarting), with a
doubling pause. Not retried: any other 4xx, since the server has judged the content and sending it again gives the
same answer; the error quotes the server's OperationOutcome so the person at the shell sees what it refused.
A retry after a timeout may reach a server that did apply the first try: the PUTs and conditional creates of the
Bundle make that harmless for results; AuditEvents carry their chain hash to dedupe by.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from fhir.resources.R4B.bundle import Bundle

from biomarker.fhir.bundle import TRANSACTION, parse_bundle, to_json
from biomarker.records import BiomarkerError

FHIR_JSON = "application/fhir+json"
RETRIED_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class FhirPostError(BiomarkerError):
    """The server did not take the Bundle; the message says what it answered (or that it never did)."""


@dataclass(frozen=True)
class PostResult:
    """The server's transaction-response Bundle and how many tries it took."""

    response: Bundle
    attempts: int


def _outcome_text(body: bytes) -> str:
    """The diagnostics of an OperationOutcome, else the start of the body."""
    try:
        document = json.loads(body)
        issues = document.get("issue", []) if isinstance(document, dict) else []
        texts = [issue.get("diagnostics") or issue.get("details", {}).get("text") or issue.get("code") for issue in issues]
        if any(texts):
            return "; ".join(text for text in texts if text)
    except (ValueError, AttributeError):
        pass
    return body[:300].decode("utf-8", "replace")


def post_bundle(bundle: Bundle, url: str, *, timeout_s: float = 30.0, retries: int = 3, backoff_s: float = 1.0,
                sleep: Callable[[float], None] = time.sleep) -> PostResult:
    """POST `bundle` (a transaction) to the FHIR base `url`; returns the validated response Bundle."""
    if bundle.type != TRANSACTION:
        raise FhirPostError(f"only a transaction Bundle can be posted, not a {bundle.type!r} one (use --transaction)")
    if not url.startswith(("http://", "https://")):
        raise FhirPostError(f"{url!r} is not an http(s) URL of a FHIR server's base")
    body = to_json(bundle).encode("utf-8")
    attempts = retries + 1
    last_problem = ""
    for attempt in range(1, attempts + 1):
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"Content-Type": FHIR_JSON, "Accept": FHIR_JSON})
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as answer:
                text = answer.read()
        except urllib.error.HTTPError as error:
            detail = _outcome_text(error.read())
            if error.code not in RETRIED_STATUSES:
                raise FhirPostError(f"{url} refused the Bundle: HTTP {error.code} {error.reason}: {detail}") from None
            last_problem = f"HTTP {error.code} {error.reason}: {detail}"
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            reason = getattr(error, "reason", error)
            last_problem = f"no answer within {timeout_s:g} s" if isinstance(reason, TimeoutError) else f"{reason}"
        else:
            try:
                return PostResult(parse_bundle(text), attempt)
            except ValueError as error:
                raise FhirPostError(f"{url} answered, but not with a FHIR Bundle: {str(error)[:300]}") from None
        if attempt < attempts:
            sleep(backoff_s * 2 ** (attempt - 1))
    raise FhirPostError(f"{url} did not take the Bundle after {attempts} tries; last: {last_problem}")
