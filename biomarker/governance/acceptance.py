"""Acceptance-gated promotion: a candidate version becomes the default only if it meets a plan fixed beforehand.

WHY: a hospital's quality and regulatory staff expect every change to pass a predetermined change control plan
(FDA's PCCP guiding principles): which data decide, which numbers must be reached, written before training, so a
retrain cannot choose its own exam. The plan is `acceptance.toml` beside the models (the catalog's user root,
else the shipped `pretrained/`); its sha256 goes into the audit event with the table, so the trail says which plan
a decision applied.

Plan layout (TOML, read with the standard library's tomllib):

    plan_version = "1"
    [models.ri-screener]                      # one block per model name
    earlier_cohorts_unchanged = true          # adapter versions: earlier cohorts' outputs must not move at all
    [models.ri-screener.criteria]             # defaults for every set of this model
    min_sensitivity = 0.85                    # at the candidate's own shipped threshold
    min_specificity = 0.90
    max_auroc_drop = 0.02                     # candidate AUROC >= current default's - this
    max_ece = 0.15
    [[models.ri-screener.sets]]
    name = "independent-espeak-wideband"
    manifest = "runs/independent/espeak/manifest-wideband.csv"   # relative to the data root (default: cwd)
    manifest_sha256 = "..."                   # of the manifest file
    audio_sha256 = "..."                      # of its rows' audio, in order (see `set_digests`)
    rebuild = "biomarker cohort independent ..."   # data sets are never committed: how to make it again
    criteria = { min_sensitivity = 0.5 }      # optional per-set overrides

A set whose files no longer hash to the plan is not evaluated: it is a failing row ("locked set changed"), since a
plan over data that moved decides nothing.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from biomarker.records import BiomarkerError

# The scoring side's imports are lazy, inside the functions that score or audit: screener, evaluate and
# models.catalog pull in torch, store.auth SQLAlchemy (~1 s), cohorts.manifest ~0.3 s. The reading side needs none
# of them, and it is loaded at start-up: `import biomarker.cli` takes PLAN_FILE from here (cli/models.py), the app's
# Models page read_records. Hoisting them needs the plan-reading side split from the scoring side first.

PLAN_FILE = "acceptance.toml"
DECISIONS_DIR = ".acceptance"  # in the user root; hidden, so the catalog never reads it as a model name
ADAPTER_METHODS = ("adapter", "conv-adapter")
DECISION_PROMOTED, DECISION_REFUSED, DECISION_OVERRIDDEN, DECISION_CHECKED = "promoted", "refused", "overridden", "checked"


class AcceptanceError(BiomarkerError, ValueError):
    """The plan is malformed, missing, or a request breaks its rules (e.g. an override without a reason)."""


@dataclass(frozen=True)
class Criteria:
    """What a candidate must reach on one locked set; None: not required."""

    min_sensitivity: float | None = None
    min_specificity: float | None = None
    max_auroc_drop: float | None = None
    max_ece: float | None = None

    @classmethod
    def parse(cls, raw: dict[str, Any], where: str, base: "Criteria | None" = None) -> "Criteria":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise AcceptanceError(f"{where}: unknown criteria {unknown}; known: {sorted(known)}")
        for key, value in raw.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
                raise AcceptanceError(f"{where}: {key} must be a number in [0, 1], got {value!r}")
        return replace(base or cls(), **{k: float(v) for k, v in raw.items()})


@dataclass(frozen=True)
class LockedSet:
    name: str
    manifest: str
    manifest_sha256: str
    audio_sha256: str
    rebuild: str
    criteria: Criteria
    cohort: str | None = None  # bundle cohort to score it with (default: matched by name, else the default)


@dataclass(frozen=True)
class ModelPlan:
    name: str
    sets: tuple[LockedSet, ...]
    earlier_cohorts_unchanged: bool = True


@dataclass(frozen=True)
class AcceptancePlan:
    path: Path
    sha256: str
    plan_version: str
    models: dict[str, ModelPlan]


def _require(raw: dict, key: str, where: str, kind: type = str) -> Any:
    value = raw.get(key)
    if not isinstance(value, kind) or (kind is str and not value.strip()):
        raise AcceptanceError(f"{where}: {key} must be a non-empty {kind.__name__}, got {value!r}")
    return value


def load_plan(path: str | Path) -> AcceptancePlan:
    """Read and validate a plan; every problem names the file and the entry."""
    path = Path(path)
    if not path.is_file():
        raise AcceptanceError(f"{path}: no acceptance plan there")
    data = path.read_bytes()
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise AcceptanceError(f"{path}: not valid TOML ({error})") from error
    models: dict[str, ModelPlan] = {}
    for name, block in (raw.get("models") or {}).items():
        where = f"{path} [models.{name}]"
        base = Criteria.parse(block.get("criteria") or {}, f"{where}.criteria")
        sets = []
        for index, entry in enumerate(block.get("sets") or []):
            at = f"{where} set {index + 1}"
            sets.append(LockedSet(
                name=_require(entry, "name", at), manifest=_require(entry, "manifest", at),
                manifest_sha256=_require(entry, "manifest_sha256", at).lower(),
                audio_sha256=_require(entry, "audio_sha256", at).lower(), rebuild=_require(entry, "rebuild", at),
                criteria=Criteria.parse(entry.get("criteria") or {}, f"{at} criteria", base), cohort=entry.get("cohort"),
            ))
        if not sets:
            raise AcceptanceError(f"{where}: a plan needs at least one locked set")
        if len({s.name for s in sets}) != len(sets):
            raise AcceptanceError(f"{where}: set names must be unique")
        models[name] = ModelPlan(name, tuple(sets), bool(block.get("earlier_cohorts_unchanged", True)))
    return AcceptancePlan(path, hashlib.sha256(data).hexdigest(), str(raw.get("plan_version", "1")), models)


def find_plan(user_root: Path, shipped_root: Path | None) -> Path:
    """The site's own plan (user root) when it has one, else the shipped one."""
    for root in (user_root, shipped_root):
        if root is not None and (root / PLAN_FILE).is_file():
            return root / PLAN_FILE
    raise AcceptanceError(f"no {PLAN_FILE} in {user_root} or {shipped_root}: promotion needs a plan "
                          "(or an admin's --override --reason)")


def set_digests(manifest: Path) -> tuple[str, str]:
    """(sha256 of the manifest file, sha256 over its rows' audio in row order: each file's digest and path)."""
    from biomarker.cohorts.manifest import read_manifest  # lazy: CLI start-up (see the note at the module's imports)
    from biomarker.models.catalog import sha256_of_file  # lazy: torch (see the note at the module's imports)

    audio = hashlib.sha256()
    for item in read_manifest(manifest):
        audio.update(f"{item.path.relative_to(manifest.parent) if item.path.is_relative_to(manifest.parent) else item.path}"
                     f"\0{sha256_of_file(item.path)}\n".encode())
    return sha256_of_file(manifest), audio.hexdigest()


@dataclass(frozen=True)
class Check:
    """One row of the acceptance table: a criterion on a set, what was required and what was measured."""

    set: str
    criterion: str
    required: str
    candidate: float | None
    default: float | None
    passed: bool
    note: str = ""


@dataclass
class AcceptanceReport:
    candidate: str
    default: str
    plan_path: str
    plan_sha256: str
    checks: list[Check] = field(default_factory=list)
    sets: dict[str, dict] = field(default_factory=dict)  # per set: candidate and default headline metrics

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(check.passed for check in self.checks)

    @property
    def failing(self) -> list[Check]:
        return [check for check in self.checks if not check.passed]

    def as_dict(self) -> dict[str, Any]:
        return {"candidate": self.candidate, "default": self.default, "plan": self.plan_path,
                "plan_sha256": self.plan_sha256, "passed": self.passed, "checks": [asdict(c) for c in self.checks],
                "sets": self.sets}

    def to_markdown(self) -> str:
        lines = [f"acceptance of {self.candidate} against the current default {self.default} "
                 f"(plan {self.plan_path}, sha256 {self.plan_sha256[:12]})", "",
                 "| set | criterion | required | candidate | default | result |", "|---|---|---|---|---|---|"]
        for c in self.checks:
            lines.append(f"| {c.set} | {c.criterion} | {c.required} | {_number(c.candidate)} | {_number(c.default)} | "
                         f"{'pass' if c.passed else 'FAIL'}{(' — ' + c.note) if c.note else ''} |")
        return "\n".join(lines)


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def no_plan_report(candidate, default, reason: str) -> AcceptanceReport:
    """The table when no plan exists: one failing row, so only an admin's audited override can promote."""
    report = AcceptanceReport(candidate.ref, default.ref, "none", "none")
    report.checks.append(Check("-", "plan", "an acceptance plan", None, None, False, reason))
    return report


def _set_metrics(screener, items, cohort: str | None, out_dir: Path) -> tuple[dict, Any]:
    """Score one locked set with one model and measure it as `biomarker evaluate` does (report written)."""
    from biomarker.evaluate.manifest import evaluate_scored  # lazy: torch (see the note at the module's imports)
    from biomarker.evaluate.scoring import score_items

    scored = score_items(screener, items, cohort=cohort)
    report = evaluate_scored(items, scored.probabilities, scored.problems, scored.thresholds, out_dir,
                             title=f"{screener.model_label} on {out_dir.name} (acceptance)",
                             model_label=screener.model_label, poolings=scored.poolings)
    if "all" not in report["sets"]:
        raise AcceptanceError(f"locked set {out_dir.name} must hold both patients and controls")
    return report["sets"]["all"], scored


def evaluate_candidate(plan: AcceptancePlan, candidate, default, *, data_root: Path, out_dir: Path,
                       device: str = "cpu") -> AcceptanceReport:
    """Score the candidate and the current default (catalog `ModelVersion`s) on every locked set of the
    candidate's plan and check each criterion; `out_dir` receives one evaluation report per set and model."""
    from biomarker.cohorts.manifest import read_manifest  # lazy: CLI start-up (see the note at the module's imports)
    from biomarker.screener import Screener  # lazy: torch (see the note at the module's imports)

    report = AcceptanceReport(candidate.ref, default.ref, str(plan.path), plan.sha256)
    model_plan = plan.models.get(candidate.name)
    if model_plan is None:
        report.checks.append(Check("-", "plan", f"a [models.{candidate.name}] block", None, None, False,
                                   f"{plan.path} has no plan for {candidate.name}"))
        return report
    screeners = {"candidate": Screener.load(str(candidate.path), device=device)}
    screeners["default"] = screeners["candidate"] if default.ref == candidate.ref else Screener.load(str(default.path), device=device)
    shared = _unchanged_cohorts(model_plan, candidate, default)
    for locked in model_plan.sets:
        manifest = Path(locked.manifest) if Path(locked.manifest).is_absolute() else data_root / locked.manifest
        if not manifest.is_file():
            report.checks.append(Check(locked.name, "locked set", "present", None, None, False,
                                       f"{manifest} is missing; rebuild it: {locked.rebuild}"))
            continue
        digests = set_digests(manifest)
        if digests != (locked.manifest_sha256, locked.audio_sha256):
            report.checks.append(Check(locked.name, "locked set", "sha256 as in the plan", None, None, False,
                                       f"{manifest} changed (manifest {digests[0][:12]}, audio {digests[1][:12]}); "
                                       f"rebuild it: {locked.rebuild}"))
            continue
        items = read_manifest(manifest)
        measured, scored = {}, {}
        for role, screener in screeners.items():
            measured[role], scored[role] = _set_metrics(screener, items, locked.cohort,
                                                        out_dir / locked.name / screener.model_label)
        report.sets[locked.name] = {role: {k: m[k] for k in ("auroc", "auroc_ci", "sensitivity", "sensitivity_ci",
                                                             "specificity", "specificity_ci", "ece", "threshold", "n")}
                                    for role, m in measured.items()}
        report.checks += _criteria_checks(locked, measured["candidate"], measured["default"])
        for cohort in shared:
            report.checks.append(_unchanged_check(locked.name, cohort, screeners, items))
    return report


def _criteria_checks(locked: LockedSet, candidate: dict, default: dict) -> list[Check]:
    c, checks = locked.criteria, []
    if c.min_sensitivity is not None:
        checks.append(Check(locked.name, "sensitivity at threshold", f">= {c.min_sensitivity:.3f}", candidate["sensitivity"],
                            default["sensitivity"], candidate["sensitivity"] >= c.min_sensitivity))
    if c.min_specificity is not None:
        checks.append(Check(locked.name, "specificity at threshold", f">= {c.min_specificity:.3f}", candidate["specificity"],
                            default["specificity"], candidate["specificity"] >= c.min_specificity))
    if c.max_auroc_drop is not None:
        floor = default["auroc"] - c.max_auroc_drop
        checks.append(Check(locked.name, "AUROC vs default", f">= {floor:.3f} (default - {c.max_auroc_drop:.3f})",
                            candidate["auroc"], default["auroc"], candidate["auroc"] >= floor))
    if c.max_ece is not None:
        checks.append(Check(locked.name, "ECE", f"<= {c.max_ece:.3f}", candidate["ece"], default["ece"],
                            candidate["ece"] <= c.max_ece))
    return checks


def _unchanged_cohorts(model_plan: ModelPlan, candidate, default) -> list[str]:
    """The cohorts whose outputs must not move: an adapter version's cohorts that the default also holds."""
    if not model_plan.earlier_cohorts_unchanged or candidate.ref == default.ref:
        return []
    if candidate.metrics.get("method") not in ADAPTER_METHODS:
        return []
    return [cohort for cohort in candidate.cohorts if cohort in default.cohorts]


def _unchanged_check(set_name: str, cohort: str, screeners: dict, items) -> Check:
    """Largest |p_candidate - p_default| over the set's recordings, both scored with bundle cohort `cohort`."""
    from biomarker.evaluate.scoring import score_items  # lazy: torch (see the note at the module's imports)

    scored = {role: score_items(screener, items, cohort=cohort).probabilities for role, screener in screeners.items()}
    pairs = [(a, b) for a, b in zip(scored["candidate"], scored["default"]) if a is not None and b is not None]
    change = max((abs(a - b) for a, b in pairs), default=0.0)
    return Check(set_name, f"outputs of earlier cohort {cohort!r}", "max |change| = 0", change, 0.0, change == 0.0,
                 f"{len(pairs)} recordings compared")


@dataclass(frozen=True)
class Decision:
    """What `decide` did, with the audit action written and the record kept for the app's model page."""

    outcome: str  # promoted | refused | overridden | checked
    report: AcceptanceReport
    record_path: Path
    reason: str | None = None


AuditWriter = Callable[[str, str, dict], None]  # (action, ref, payload); raises when the event cannot be written


def decide(report: AcceptanceReport, *, catalog, actor, audit: AuditWriter, override_reason: str | None = None,
           check_only: bool = False) -> Decision:
    """Promote when the report passes; otherwise refuse, unless an admin overrides with a reason.

    The audit event comes first and a promotion happens only once it is written: an unrecorded gate decision
    would be no gate. A refusal is audited too (`model_promotion_refused`), so failed attempts show in the trail.
    `check_only` records the table for the model page without promoting or auditing."""
    from biomarker.store import auth  # lazy: SQLAlchemy (see the note at the module's imports)

    if override_reason is not None:
        if not override_reason.strip():
            raise AcceptanceError("--override needs a --reason saying why the plan is set aside")
        if not auth.can(actor.role, auth.MANAGE_USERS):
            raise AcceptanceError(f"only an admin may override the acceptance plan ({actor.username} is {actor.role})")
    if check_only:
        outcome = DECISION_CHECKED
    elif report.passed:
        outcome = DECISION_PROMOTED
    else:
        outcome = DECISION_OVERRIDDEN if override_reason is not None else DECISION_REFUSED
    payload = {"decision": outcome, "plan": report.plan_path, "plan_sha256": report.plan_sha256,
               "default_before": report.default, "checks": [asdict(c) for c in report.checks],
               "failing": [f"{c.set}: {c.criterion}" for c in report.failing]}
    if outcome == DECISION_OVERRIDDEN:
        payload["reason"] = override_reason
    if outcome != DECISION_CHECKED:
        action = {DECISION_PROMOTED: "model_promoted", DECISION_REFUSED: "model_promotion_refused",
                  DECISION_OVERRIDDEN: "model_promoted_override"}[outcome]
        if outcome != DECISION_REFUSED:
            target = catalog.get(report.candidate)
            if target.sha256 is None or target.integrity.startswith("MISMATCH"):
                raise AcceptanceError(f"{target.ref} cannot be promoted: {target.integrity}")
            payload["sha256"] = target.sha256
        audit(action, report.candidate, payload)
        if outcome != DECISION_REFUSED:
            catalog.promote(report.candidate)
    record = write_record(catalog.user_root, report, outcome, actor.username, override_reason)
    return Decision(outcome, report, record, override_reason)


def write_record(user_root: Path, report: AcceptanceReport, outcome: str, actor: str, reason: str | None) -> Path:
    """The latest acceptance table of a version, read by the app's model page (which loads no model)."""
    folder = Path(user_root) / DECISIONS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{report.candidate}.json"
    record = {**report.as_dict(), "decision": outcome, "actor": actor, "reason": reason,
              "decided_utc": datetime.now(timezone.utc).replace(microsecond=0).isoformat()}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def read_records(user_root: Path) -> dict[str, dict]:
    """ref -> its latest acceptance record (empty when none was ever checked)."""
    folder = Path(user_root) / DECISIONS_DIR
    if not folder.is_dir():
        return {}
    return {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in sorted(folder.glob("*.json"))}
