"""Model versions: immutable, uniquely named, sha256-checked; promote only changes which one is the default."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from biomarker.cli import app
from biomarker.models.catalog import Catalog, CatalogError, parse_ref, version_sort_key
from biomarker.records import ModelNotFoundError


class FakeModel:
    """Stands in for ScreeningModel: carries name/version and saves weights + a config that records the version."""

    def __init__(self, name: str, payload: bytes, cohorts=("a",)):
        self.name = name
        self.version = "unset"
        self.payload = payload
        self.cohorts = list(cohorts)

    def save_pretrained(self, directory) -> None:
        directory = Path(directory)
        (directory / "model.safetensors").write_bytes(self.payload)
        config = {"kind": "screening", "name": self.name, "version": self.version, "cohorts": self.cohorts}
        (directory / "config.json").write_text(json.dumps(config))


def ship(root: Path, name: str, payload: bytes, version: str | None = None) -> str:
    """A shipped artefact in the repo's layout: pretrained/<name>/ with a card that records the sha256."""
    directory = root / name
    directory.mkdir(parents=True)
    (directory / "model.safetensors").write_bytes(payload)
    config = {"kind": "ssast"} | ({"version": version} if version else {})
    (directory / "config.json").write_text(json.dumps(config))
    digest = hashlib.sha256(payload).hexdigest()
    (directory / "card.md").write_text(f"# {name}\n\nsha256 of model.safetensors: {digest}\n")
    return digest


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return Catalog(user_root=tmp_path / "home" / "models", shipped_root=tmp_path / "pretrained")


def test_shipped_version_is_listed_with_verified_sha256(catalog: Catalog):
    digest = ship(catalog.shipped_root, "ri-screener", b"weights-v1", version="1")
    (entry,) = catalog.versions()
    assert entry.ref == "ri-screener@1"
    assert entry.sha256 == digest and entry.integrity == "ok"
    assert entry.is_default and entry.source == "shipped"


def test_tampered_weights_are_reported_and_cannot_be_promoted(catalog: Catalog):
    ship(catalog.shipped_root, "ri-screener", b"weights-v1", version="1")
    (catalog.shipped_root / "ri-screener" / "model.safetensors").write_bytes(b"other weights")
    assert catalog.get("ri-screener@1").integrity.startswith("MISMATCH")
    with pytest.raises(CatalogError, match="cannot be promoted"):
        catalog.promote("ri-screener@1")


def test_retrain_continues_shipped_numbering_and_writes_its_own_card(catalog: Catalog):
    ship(catalog.shipped_root, "ri-screener", b"weights-v1", version="1")
    model = FakeModel("ri-screener", b"weights-v2", cohorts=("a", "b"))
    published = catalog.publish(model, card="# retrained on cohort b", parent="ri-screener@1", cohorts=["a", "b"])
    assert published.version == "2" and model.version == "2"
    saved_config = json.loads((published.path / "config.json").read_text())
    assert saved_config["version"] == "2"  # the weights' own config agrees with the catalog
    card = published.card_path.read_text()
    assert "retrained on cohort b" in card and hashlib.sha256(b"weights-v2").hexdigest() in card
    assert published.parent == "ri-screener@1" and published.cohorts == ("a", "b")
    assert published.integrity == "ok"


def test_publishing_never_changes_an_existing_version(catalog: Catalog):
    first = catalog.publish(FakeModel("m", b"one"), card="# one")
    before = {p.name: p.read_bytes() for p in first.path.iterdir()}
    second = catalog.publish(FakeModel("m", b"two"), card="# two")
    assert (first.version, second.version) == ("1", "2")
    assert {p.name: p.read_bytes() for p in first.path.iterdir()} == before


def test_publish_refuses_a_version_directory_that_already_exists(catalog: Catalog, monkeypatch):
    catalog.publish(FakeModel("m", b"one"), card="# one")
    monkeypatch.setattr(Catalog, "next_version", lambda self, name: "1")
    with pytest.raises(CatalogError, match="never overwritten"):
        catalog.publish(FakeModel("m", b"two"), card="# two")
    assert (catalog.user_root / "m" / "1" / "model.safetensors").read_bytes() == b"one"


def test_publish_requires_a_card(catalog: Catalog):
    with pytest.raises(CatalogError, match="needs a card"):
        catalog.publish(FakeModel("m", b"one"), card="  ")
    assert catalog.versions("m") == []


def test_failed_save_leaves_no_version_behind(catalog: Catalog):
    class Broken(FakeModel):
        def save_pretrained(self, directory) -> None:
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        catalog.publish(Broken("m", b""), card="# x")
    assert catalog.versions("m") == []
    assert list((catalog.user_root / "m").iterdir()) == []


def test_new_version_is_not_default_until_promoted(catalog: Catalog):
    ship(catalog.shipped_root, "ri-screener", b"weights-v1", version="1")
    catalog.publish(FakeModel("ri-screener", b"v2"), card="# v2")
    assert catalog.get("ri-screener").version == "1"
    catalog.promote("ri-screener@2")
    assert catalog.get("ri-screener").version == "2"
    assert [v.is_default for v in catalog.versions("ri-screener")] == [False, True]


def test_user_only_name_keeps_its_first_version_as_default_until_promoted(catalog: Catalog):
    for payload in (b"one", b"two", b"three"):
        catalog.publish(FakeModel("m", payload), card="# m")
    assert catalog.get("m").version == "1"
    catalog.promote("m@3")
    assert catalog.get("m").version == "3"


def test_unknown_names_and_versions_raise_model_not_found(catalog: Catalog):
    catalog.publish(FakeModel("m", b"one"), card="# one")
    with pytest.raises(ModelNotFoundError, match="no model named 'nope'"):
        catalog.get("nope")
    with pytest.raises(ModelNotFoundError, match="no version '7'"):
        catalog.get("m@7")


@pytest.mark.parametrize("ref", ["", "Upper", "a/b", "m@", "m@x/y", "../m"])
def test_malformed_references_name_the_bad_value(ref: str):
    with pytest.raises(CatalogError, match="not allowed"):
        parse_ref(ref)


def test_versions_sort_naturally():
    assert sorted(["10", "9", "1.10", "1.9"], key=version_sort_key) == ["1.9", "1.10", "9", "10"]


def test_unversioned_shipped_encoder_counts_as_version_one(catalog: Catalog):
    ship(catalog.shipped_root, "ssast-tiny-patch", b"enc")
    assert catalog.get("ssast-tiny-patch").version == "1"
    assert catalog.next_version("ssast-tiny-patch") == "2"


def test_cli_list_show_promote(catalog: Catalog):
    ship(catalog.shipped_root, "ri-screener", b"weights-v1", version="1")
    catalog.publish(FakeModel("ri-screener", b"v2"), card="# v2 card", metrics={"auroc": 0.91})
    roots = ["--user-root", str(catalog.user_root), "--shipped-root", str(catalog.shipped_root)]
    runner = CliRunner()

    listed = runner.invoke(app, ["models", "list", *roots])
    assert listed.exit_code == 0, listed.output
    assert "* ri-screener@1" in listed.output and "ri-screener@2" in listed.output and "0.910" in listed.output

    home = catalog.user_root.parent / "store-home"
    refused = runner.invoke(app, ["models", "promote", "ri-screener@2", *roots], env={"BIOMARKER_HOME": str(home)})
    assert refused.exit_code == 1 and "no acceptance.toml" in refused.output and "refused" in refused.output  # no plan here: only an override promotes
    promoted = runner.invoke(app, ["models", "promote", "ri-screener@2", *roots, "--override", "--reason", "test"],
                             env={"BIOMARKER_HOME": str(home)})
    assert promoted.exit_code == 0, promoted.output
    from biomarker.settings import Settings
    from biomarker.store import Store, UserInfo

    events = Store(Settings.from_env({"BIOMARKER_HOME": str(home)})).audit_events(viewer=UserInfo("a", "auditor"))
    assert [(e.action, e.object_id) for e in events] == [("model_promoted_override", "ri-screener@2"),
                                                          ("model_promotion_refused", "ri-screener@2")]  # both audited
    shown = runner.invoke(app, ["models", "show", "ri-screener", "--json", *roots])
    assert json.loads(shown.output)["ref"] == "ri-screener@2"

    card = runner.invoke(app, ["models", "show", "ri-screener@2", *roots])
    assert "# v2 card" in card.output and "## Provenance" in card.output

    missing = runner.invoke(app, ["models", "show", "ri-screener@9", *roots])
    assert missing.exit_code == 1 and "no version '9'" in missing.output
