"""Shared fixtures: the app under test, the golden scenarios, and a real FHIR server (sekmet-fhir)."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from cds_service.app import create_app
from cds_service.config import settings_from_mapping

from . import postgres, servers
from .servers import free_port

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "fixtures" / "scenarios"
SHARED = ROOT.parent / "shared"
FIXTURE_NOW = datetime.fromisoformat("2026-11-15T12:00:00+00:00")
# Logs of the servers the tests start: one folder per test session, removed when it ends.
LOGS = Path(tempfile.mkdtemp(prefix="cds-service-tests-"))
atexit.register(shutil.rmtree, LOGS, ignore_errors=True)
SERVICE = "magnesium-order-check"  # the wave-1 id: still answers both order hooks (unlisted)
HOOKS = ("order-select", "order-sign")
SERVICE_FOR = {
    "order-select": "magnesium-order-select",
    "order-sign": "magnesium-order-sign",
    "patient-view": "magnesium-patient-review",
}


def scenario_cases() -> list[tuple[str, str]]:
    """(scenario, hook) for every hook each scenario's expected.json names."""
    return [(n, hook) for n in scenario_names() for hook in load_json(SCENARIOS / n / "expected.json")["hooks"]]


def scenario_names() -> list[str]:
    return sorted(p.name for p in SCENARIOS.iterdir() if (p / "expected.json").exists())


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A real PostgreSQL (libpq URL of a superuser): CDS_TEST_POSTGRES_URL, or a cluster started here.
    Missing binaries fail the run in CI (CI=true) and skip the PostgreSQL tests elsewhere."""
    if os.environ.get(postgres.ADMIN_URL_ENV):
        yield os.environ[postgres.ADMIN_URL_ENV]
        return
    if postgres.binaries() is None:
        message = "PostgreSQL server not installed (Debian: apt-get install postgresql)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with postgres.cluster(free_port()) as url:
        yield url


@pytest.fixture
def postgres_db(postgres_server) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test; its SQLAlchemy URL (psycopg 3)."""
    with postgres.fresh_database(postgres_server) as url:
        yield postgres.sqlalchemy_url(url)


@pytest.fixture
def make_app(tmp_path):
    """Build the real app with a config mapping (as a site's YAML would give) and the fixture clock."""

    def factory(config: dict[str, Any] | None = None, now: datetime | None = FIXTURE_NOW):
        raw = {"data_dir": str(tmp_path / "data"), **(config or {})}
        app = create_app(settings_from_mapping(raw, now=now))
        app.testing = True
        return app

    return factory


@pytest.fixture
def client(make_app):
    return make_app().test_client()


@pytest.fixture(scope="session")
def fhir_server(tmp_path_factory) -> Iterator[str]:
    """A real FHIR R4 server on a loopback port, loaded with every scenario's non-draft data."""
    with servers.sekmet(tmp_path_factory.mktemp("fhir")) as base:
        for name in scenario_names():
            load_bundle(base, load_json(SCENARIOS / name / "bundle.json"))
        yield base


def load_bundle(base: str, bundle: dict[str, Any]) -> None:
    """PUT every resource except the draft orders (they exist only in the EHR session)."""
    entries = []
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource.get("status") == "draft":
            continue
        url = f"{resource['resourceType']}/{resource['id']}"
        entries.append({"resource": resource, "request": {"method": "PUT", "url": url}})
    response = requests.post(
        base,
        json={"resourceType": "Bundle", "type": "transaction", "entry": entries},
        headers={"Content-Type": "application/fhir+json"},
        timeout=30,
    )
    assert response.status_code in (200, 201), response.text[:500]


def start_service(
    *args: str,
    port: int | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    command: bool = True,
) -> tuple[subprocess.Popen, str]:
    """`cds-service serve` (gunicorn) on a loopback port, returned once /healthz answers.
    command=False: `args` is the whole argument list, `--port` included (as a container's CMD)."""
    if not command:
        port = int(args[args.index("--port") + 1])
    port = port or free_port()
    if "--metrics-port" not in args:  # the default (9464) would collide between test servers
        args = (*args, "--metrics-port", str(free_port()))
    metrics_port = args[args.index("--metrics-port") + 1]
    exe = Path(sys.executable).with_name("cds-service")
    log_path = Path(tempfile.mkdtemp(prefix="serve-", dir=LOGS)) / "serve.log"  # a file, not a pipe: a pipe could fill
    with log_path.open("w") as log:  # the child keeps its own handle
        proc = subprocess.Popen(
            [str(exe), *(("serve", "--port", str(port)) if command else ()), *args],
            env=env,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    proc.log_path = log_path  # type: ignore[attr-defined]  # tests read the JSON log lines
    proc.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"  # type: ignore[attr-defined]
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                return proc, base
        except requests.RequestException:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"cds-service did not start: {log_path.read_text()[-2000:]}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def client_once(tmp_path_factory):
    """One app for a whole module (the fuzz tests send thousands of requests to the same service)."""
    raw = {"data_dir": str(tmp_path_factory.mktemp("fuzz") / "data")}
    app = create_app(settings_from_mapping(raw, now=FIXTURE_NOW))
    return app.test_client()
