"""Model versions: what exists, which one is the default, and where a retrain goes.

Why a catalog: a clinician's score must name the exact weights that produced it, and a researcher's retrain on a
new cohort must never change what an earlier score was computed with. So versions are immutable directories,
new work always lands in a new version directory (with its own card), and "which version is used by default" is
a separate, explicit act (`promote`) rather than a side effect of training.

Two roots are read, no torch needed (the CLI lists models without loading them):

- the shipped root, `pretrained/` in the repository: `pretrained/<name>/` is one version (its `config.json`
  `version`, or "1" when the artefact predates versioning), or `pretrained/<name>/<version>/` for several;
- the user root, `$BIOMARKER_HOME/models/`: `<name>/<version>/` directories written by `Catalog.publish`, and
  `defaults.json` ({name: version}) written by `Catalog.promote`. The shipped root is never written.

A version directory holds `model.safetensors`, `config.json`, `card.md` and, when the catalog wrote it,
`version.json` (name, version, parent, cohorts, metrics, sha256 of the weights, creation time). The version
string written there is the same one saved in the model's own config, which is what `ScreeningModel.version`
returns and what every `Score.model_version` records.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

from biomarker.records import BiomarkerError, ModelNotFoundError

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "card.md"
VERSION_FILE = "version.json"
DEFAULTS_FILE = "defaults.json"
UNVERSIONED = "1"  # shipped artefacts whose config carries no version are its first version

SOURCE_SHIPPED = "shipped"
SOURCE_USER = "user"

_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,79}$")
_SHA256_IN_CARD = re.compile(r"sha256.{0,60}?\b([0-9a-f]{64})\b", re.IGNORECASE)


class CatalogError(BiomarkerError, ValueError):
    """A model name, version or reference is malformed, or a request would break the catalog's rules."""


class VersionExistsError(CatalogError):
    """Writing would replace an existing version; versions are immutable, a retrain makes a new one."""


class SavesPretrained(Protocol):
    """What `publish` needs from a model: a name/version it carries in its own config, and a way to save it."""

    name: str
    version: str

    def save_pretrained(self, directory: str | os.PathLike) -> None: ...


def default_user_root() -> Path:
    """`$BIOMARKER_HOME/models` (home defaults to ~/.biomarker, as in `Settings.from_env`)."""
    home = os.environ.get("BIOMARKER_HOME") or str(Path.home() / ".biomarker")
    return Path(home).expanduser() / "models"


def default_shipped_root() -> Path:
    """The repository's `pretrained/` folder, next to the `biomarker` package."""
    return Path(__file__).resolve().parents[2] / "pretrained"


def check_name(kind: str, value: str) -> str:
    """Names and versions become directory names and `name@version` references: keep them plain."""
    if not isinstance(value, str) or not _NAME_PATTERN.match(value):
        raise CatalogError(
            f"{kind} {value!r} is not allowed: use 1-80 lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def parse_ref(ref: str) -> tuple[str, str | None]:
    """'ri-screener@3' -> ('ri-screener', '3'); 'ri-screener' -> ('ri-screener', None)."""
    name, sep, version = ref.partition("@")
    check_name("model name", name)
    if sep:
        check_name("version", version)
        return name, version
    return name, None


def version_sort_key(version: str) -> tuple:
    """Natural order: '10' after '9', '1.10' after '1.9'; non-numeric parts compare as text after numbers."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"[.\-_]", version))


def sha256_of_file(path: Path) -> str:
    """Hex digest, read in chunks so a large checkpoint does not need to fit in memory twice."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise CatalogError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(data, dict):
        raise CatalogError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


@dataclass(frozen=True)
class ModelVersion:
    """One immutable model version as the catalog sees it on disk."""

    name: str
    version: str
    path: Path
    source: str
    kind: str | None
    parent: str | None
    cohorts: tuple[str, ...]
    metrics: dict[str, Any]
    created_utc: str | None
    sha256: str | None
    recorded_sha256: str | None
    is_default: bool = False
    card_path: Path | None = None

    @property
    def ref(self) -> str:
        """The exact reference a score records: 'name@version'."""
        return f"{self.name}@{self.version}"

    @property
    def integrity(self) -> str:
        """'ok' when the weights hash to what the card/version file recorded; otherwise says what is wrong."""
        if self.sha256 is None:
            return f"missing {WEIGHTS_FILE}"
        if self.recorded_sha256 is None:
            return "no recorded sha256"
        return "ok" if self.sha256 == self.recorded_sha256 else "MISMATCH: weights differ from the recorded sha256"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready description (for `biomarker models show --json` and reports)."""
        return {
            "ref": self.ref,
            "name": self.name,
            "version": self.version,
            "path": str(self.path),
            "source": self.source,
            "kind": self.kind,
            "parent": self.parent,
            "cohorts": list(self.cohorts),
            "metrics": self.metrics,
            "created_utc": self.created_utc,
            "sha256": self.sha256,
            "integrity": self.integrity,
            "default": self.is_default,
            "card": str(self.card_path) if self.card_path else None,
        }


def _cohorts_from_config(config: dict[str, Any]) -> tuple[str, ...]:
    """A bundle's config lists its cohorts; encoders have none."""
    cohorts = config.get("cohorts", ())
    if isinstance(cohorts, dict):
        return tuple(cohorts)
    return tuple(str(c) for c in cohorts)


def read_version_dir(directory: Path, *, name: str, source: str, version_hint: str | None = None) -> ModelVersion:
    """Describe one version directory from its files (version.json first, then config.json, then the card)."""
    meta = _read_json(directory / VERSION_FILE)
    config = _read_json(directory / CONFIG_FILE)
    version = str(meta.get("version") or config.get("version") or version_hint or UNVERSIONED)
    if version_hint is not None and version != version_hint:
        raise CatalogError(
            f"{directory}: directory says version {version_hint!r} but its files say {version!r}; "
            "a version directory must be named after the version it holds"
        )
    weights = directory / WEIGHTS_FILE
    card = directory / CARD_FILE
    recorded = meta.get("sha256")
    if recorded is None and card.is_file():
        match = _SHA256_IN_CARD.search(card.read_text(encoding="utf-8"))
        recorded = match.group(1).lower() if match else None
    return ModelVersion(
        name=name,
        version=version,
        path=directory,
        source=source,
        kind=config.get("kind"),
        parent=meta.get("parent") or config.get("parent"),
        cohorts=tuple(meta.get("cohorts") or _cohorts_from_config(config)),
        metrics=dict(meta.get("metrics") or {}),
        created_utc=meta.get("created_utc"),
        sha256=sha256_of_file(weights) if weights.is_file() else None,
        recorded_sha256=recorded,
        card_path=card if card.is_file() else None,
    )


def _is_version_dir(directory: Path) -> bool:
    return (directory / CONFIG_FILE).is_file()


@dataclass
class Catalog:
    """Every model version under the shipped and the user roots, plus the user's default choices."""

    user_root: Path = field(default_factory=default_user_root)
    shipped_root: Path | None = field(default_factory=default_shipped_root)

    # ------------------------------------------------------------------------------------------- reading
    def _scan_root(self, root: Path | None, source: str) -> Iterable[ModelVersion]:
        if root is None or not root.is_dir():
            return
        for name_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if not _NAME_PATTERN.match(name_dir.name):
                continue
            if source == SOURCE_SHIPPED and _is_version_dir(name_dir):
                yield read_version_dir(name_dir, name=name_dir.name, source=source)
                continue
            for version_dir in sorted(p for p in name_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
                if _is_version_dir(version_dir):
                    yield read_version_dir(version_dir, name=name_dir.name, source=source, version_hint=version_dir.name)

    def _defaults(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in _read_json(self.user_root / DEFAULTS_FILE).items()}

    def versions(self, name: str | None = None) -> list[ModelVersion]:
        """All versions (of one name, if given), ordered by name then version, with `is_default` filled in."""
        found: dict[tuple[str, str], ModelVersion] = {}
        for source, root in ((SOURCE_SHIPPED, self.shipped_root), (SOURCE_USER, self.user_root)):
            for entry in self._scan_root(root, source):
                if name is not None and entry.name != name:
                    continue
                key = (entry.name, entry.version)
                if key in found:
                    raise CatalogError(
                        f"{entry.ref} exists twice ({found[key].path} and {entry.path}); "
                        "a version must be unique so a score's version names one set of weights"
                    )
                found[key] = entry
        ordered = sorted(found.values(), key=lambda v: (v.name, version_sort_key(v.version)))
        defaults = {n: self._default_version(n, [v for v in ordered if v.name == n]) for n in {v.name for v in ordered}}
        return [_with_default(v, defaults[v.name] == v.version) for v in ordered]

    def _default_version(self, name: str, versions: list[ModelVersion]) -> str:
        """Promoted version, else the newest shipped one, else the first version.

        Never "the newest": a retrain must not change what scoring by name uses until someone promotes it."""
        promoted = self._defaults().get(name)
        if promoted is not None and any(v.version == promoted for v in versions):
            return promoted
        shipped = [v for v in versions if v.source == SOURCE_SHIPPED]
        return shipped[-1].version if shipped else versions[0].version

    def names(self) -> list[str]:
        return sorted({v.name for v in self.versions()})

    def get(self, ref: str) -> ModelVersion:
        """'name@version' -> that version; 'name' -> its default version. Raises ModelNotFoundError."""
        name, version = parse_ref(ref)
        versions = self.versions(name)
        if not versions:
            raise ModelNotFoundError(f"no model named {name!r} in {self.shipped_root} or {self.user_root}")
        if version is None:
            return next(v for v in versions if v.is_default)
        for entry in versions:
            if entry.version == version:
                return entry
        known = ", ".join(v.version for v in versions)
        raise ModelNotFoundError(f"{name!r} has no version {version!r} (known: {known})")

    def resolve(self, name_or_dir: str | os.PathLike) -> Path:
        """A directory stays itself; a catalog reference becomes its version directory (what loaders need)."""
        as_path = Path(name_or_dir)
        if as_path.is_dir():
            return as_path
        return self.get(str(name_or_dir)).path

    # ------------------------------------------------------------------------------------------- writing
    def next_version(self, name: str) -> str:
        """One more than the highest whole-number major version of `name` across both roots ('1' if none)."""
        check_name("model name", name)
        majors = [int(m.group()) for v in self.versions(name) if (m := re.match(r"\d+", v.version))]
        return str(max(majors, default=0) + 1)

    def publish(
        self,
        model: SavesPretrained,
        *,
        card: str,
        parent: str | None = None,
        cohorts: Iterable[str] = (),
        metrics: dict[str, Any] | None = None,
        extra_files: dict[str, Callable[[Path], None]] | None = None,
    ) -> ModelVersion:
        """Save `model` as a brand-new version of `model.name`; never touches an existing version.

        The catalog picks the version, sets `model.version` to it before saving (so the weights' own config and
        the directory agree), writes the card with a provenance section holding the weights' sha256, and writes
        `version.json`. The directory is assembled under a temporary name and renamed into place at the end, so
        a crash leaves no half-written version. `extra_files` maps a file name to a writer (e.g. a report PNG).
        """
        name = check_name("model name", model.name)
        if not card or not card.strip():
            raise CatalogError(f"{name}: a new version needs a card (training data, metrics, what not to use it for)")
        name_dir = self.user_root / name
        name_dir.mkdir(parents=True, exist_ok=True)
        version = self.next_version(name)
        final = name_dir / version
        if final.exists():
            raise VersionExistsError(f"{name}@{version} already exists at {final}; versions are never overwritten")
        model.version = version
        staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=name_dir))
        try:
            model.save_pretrained(staging)
            weights = staging / WEIGHTS_FILE
            if not weights.is_file():
                raise CatalogError(f"{name}@{version}: save_pretrained wrote no {WEIGHTS_FILE}")
            digest = sha256_of_file(weights)
            meta = {
                "name": name,
                "version": version,
                "parent": parent,
                "cohorts": list(cohorts),
                "metrics": metrics or {},
                "sha256": digest,
                "created_utc": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
            }
            (staging / VERSION_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            (staging / CARD_FILE).write_text(_card_with_provenance(card, meta), encoding="utf-8")
            for file_name, writer in (extra_files or {}).items():
                writer(staging / file_name)
            for item in staging.iterdir():
                item.chmod(0o444)  # immutable by intent: an accidental write fails loudly
            try:
                os.rename(staging, final)  # fails if another process created a non-empty `final` meanwhile
            except OSError as error:
                raise VersionExistsError(f"{name}@{version} appeared while saving; nothing was overwritten") from error
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return self.get(f"{name}@{version}")

    def promote(self, ref: str) -> ModelVersion:
        """Make `name@version` the default for its name (recorded in the user root; no weights move)."""
        name, version = parse_ref(ref)
        if version is None:
            raise CatalogError(f"promote needs an exact version, e.g. {name}@2 (got {ref!r})")
        target = self.get(ref)
        if target.integrity.startswith("MISMATCH") or target.sha256 is None:
            raise CatalogError(f"{target.ref} cannot be promoted: {target.integrity}")
        defaults = self._defaults()
        defaults[name] = version
        self.user_root.mkdir(parents=True, exist_ok=True)
        tmp = self.user_root / f".{DEFAULTS_FILE}.tmp"
        tmp.write_text(json.dumps(defaults, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, self.user_root / DEFAULTS_FILE)
        return self.get(ref)


def _with_default(entry: ModelVersion, is_default: bool) -> ModelVersion:
    return ModelVersion(**{**entry.__dict__, "is_default": is_default})


def _card_with_provenance(card: str, meta: dict[str, Any]) -> str:
    """The caller's card plus the facts only the catalog knows, so the card alone identifies the weights."""
    cohorts = ", ".join(meta["cohorts"]) or "none"
    lines = [
        card.rstrip(),
        "",
        "## Provenance",
        "",
        f"- Version: `{meta['name']}@{meta['version']}` (immutable; a retrain writes a new version)",
        f"- Parent: `{meta['parent'] or 'none'}`",
        f"- Cohorts: {cohorts}",
        f"- Created (UTC): {meta['created_utc']}",
        f"- sha256 of `{WEIGHTS_FILE}`: `{meta['sha256']}`",
        "",
    ]
    return "\n".join(lines)
