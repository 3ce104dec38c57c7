"""docker-compose.yml and the Dockerfile, checked by parsing (no docker engine on the test machines)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
_DEFAULTED = re.compile(r"\$\{(\w+):-([^}]*)\}")


class _ComposeLoader(yaml.SafeLoader):
    """Safe YAML plus Compose's `!reset` tag (kept as a marker so the test can see what is reset)."""


_ComposeLoader.add_constructor("!reset", lambda loader, node: "!reset")


def _load(name: str) -> dict:
    """Parse a compose file with `${VAR:-default}` replaced by its default, as Compose does with VAR unset."""
    text = _DEFAULTED.sub(lambda m: m.group(2), (ROOT / name).read_text())
    return yaml.load(text, Loader=_ComposeLoader)


@pytest.fixture(scope="module")
def compose() -> dict:
    return _load("docker-compose.yml")


def test_services_are_the_app_postgres_15_and_a_tls_proxy(compose):
    assert set(compose["services"]) == {"app", "db", "proxy"}
    assert compose["services"]["db"]["image"] == "postgres:15"


def test_database_has_a_health_check_and_a_named_volume(compose):
    db = compose["services"]["db"]
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    volume, mount = db["volumes"][0].split(":")
    assert mount == "/var/lib/postgresql/data" and volume in compose["volumes"]


def test_app_waits_for_a_healthy_database_and_is_wired_to_it(compose):
    app, db = compose["services"]["app"], compose["services"]["db"]
    assert app["depends_on"]["db"]["condition"] == "service_healthy"
    url = make_url(app["environment"]["DATABASE_URL"])
    assert (url.drivername, url.host, url.port) == ("postgresql+psycopg", "db", 5432)
    assert (url.username, url.password, url.database) == (
        db["environment"]["POSTGRES_USER"], db["environment"]["POSTGRES_PASSWORD"], db["environment"]["POSTGRES_DB"])


def test_app_keeps_its_data_folder_in_a_volume(compose):
    app = compose["services"]["app"]
    volume, mount = app["volumes"][0].split(":")
    assert mount == app["environment"]["BIOMARKER_HOME"] and volume in compose["volumes"]


def test_app_reserves_the_gpu_and_the_cpu_override_removes_the_reservation(compose):
    [device] = compose["services"]["app"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert "--device" in compose["services"]["app"]["command"]
    assert compose["services"]["app"]["command"][compose["services"]["app"]["command"].index("--device") + 1] == "auto"
    assert _load("docker-compose.cpu.yml")["services"]["app"]["deploy"] == "!reset"


def test_only_the_tls_proxy_is_published_and_it_forwards_to_the_app(compose):
    app, proxy = compose["services"]["app"], compose["services"]["proxy"]
    assert "ports" not in app and "ports" not in compose["services"]["db"]  # nothing in clear leaves the host
    [port] = app["expose"]
    command = app["command"]
    assert command[command.index("--port") + 1] == port and command[command.index("--address") + 1] == "0.0.0.0"
    assert proxy["image"].startswith("caddy:") and proxy["ports"] == ["443:443"]
    caddyfile_mount = next(v for v in proxy["volumes"] if v.endswith(":/etc/caddy/Caddyfile:ro"))
    caddyfile = (ROOT / caddyfile_mount.split(":")[0]).read_text()
    directives = [line.split("#")[0].strip() for line in caddyfile.splitlines()]
    assert f"reverse_proxy app:{port}" in directives
    assert "tls {$BIOMARKER_TLS:internal}" in directives  # self-signed for a trial, the hospital's cert by env
    assert proxy["environment"]["BIOMARKER_TLS"] == "internal"
    assert any(line.startswith("Strict-Transport-Security") for line in directives)


def test_dockerfile_installs_the_postgres_driver_and_runs_unprivileged():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11", dockerfile, re.M)
    assert re.search(r'pip install .*\[postgres\]', dockerfile)
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.M)
    assert re.search(r"^HEALTHCHECK ", dockerfile, re.M)
    for arguments in re.findall(r"^COPY (.+)$", dockerfile, re.M):
        for copied in arguments.split()[:-1]:  # the last argument is the destination
            assert (ROOT / copied).exists(), f"Dockerfile copies {copied}, which is not in the repository"
