"""Shared fixtures: the app under test, the golden scenarios, and a real FHIR server (sekmet-fhir)."""

from __future__ import annotations

import ast
import atexit
import functools
import inspect
import json
import os
import re
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
from cds_service.config import Settings, settings_from_mapping

from . import postgres, servers
from .servers import free_port
from .timing import TIME_SCALE, scaled

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

    apps = []

    def factory(config: dict[str, Any] | None = None, now: datetime | None = FIXTURE_NOW):
        raw = {"data_dir": str(tmp_path / "data"), **(config or {})}
        if isinstance(raw.get("fhir", {}), dict):
            raw["fhir"] = scaled_fhir_waits(raw.get("fhir") or {})
        app = create_app(settings_from_mapping(raw, now=now))
        app.testing = True
        apps.append(app)
        return app

    yield factory
    # Stop each app's card writer, as a worker's exit does: a writer left running would go on
    # retrying a database the test has dropped, and its warnings would land in later tests' logs.
    for app in apps:
        recorder = app.extensions.get("card_recorder")
        if recorder is not None:
            recorder.close(timeout=1.0)


def scaled_fhir_waits(fhir: dict[str, Any]) -> dict[str, Any]:
    """The FHIR timeout and deadline (2 s and 3 s by default) widened by CDS_TEST_TIME_SCALE, unless
    the test sets them itself (then it is testing them). A loaded machine must not turn a fetch from
    the test's own FHIR server into a data gap."""
    if TIME_SCALE == 1:
        return fhir
    settings = Settings()
    waits = {
        "timeout_seconds": min(60.0, settings.fhir.timeout_seconds * TIME_SCALE),
        "deadline_seconds": min(120.0, settings.fhir.deadline_seconds * TIME_SCALE),
    }
    return {**waits, **fhir}


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
        timeout=scaled(30),
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
    command=False: `args` is the whole argument list, `--port` included (as a container's CMD).
    Ports it picks itself are free when picked; should another process take one before the service
    binds it (parallel tests), it starts again on new ones rather than fail the test."""
    ours = port is None and command and "--metrics-port" not in args
    for attempt in range(3):
        proc, base, log_path = _start_once(args, port, env, cwd, command)
        try:
            wait_healthy(proc, base)
            return proc, base
        except RuntimeError:
            proc.kill()
            proc.wait()
            lost_a_port = "cannot listen on" in log_path.read_text() or "Address already in use" in log_path.read_text()
            if not (ours and lost_a_port) or attempt == 2:
                raise RuntimeError(f"cds-service did not start: {log_path.read_text()[-2000:]}") from None
    raise AssertionError("unreachable")


def _start_once(
    args: tuple[str, ...], port: int | None, env: dict[str, str] | None, cwd: Path | None, command: bool
) -> tuple[subprocess.Popen, str, Path]:
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
    return proc, f"http://127.0.0.1:{port}", log_path


def wait_healthy(proc: subprocess.Popen, base: str) -> None:
    deadline = time.monotonic() + scaled(30)
    while True:
        try:
            if requests.get(f"{base}/healthz", timeout=scaled(1)).status_code == 200:
                return
        except requests.RequestException:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("not healthy")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def client_once(tmp_path_factory):
    """One app for a whole module (the fuzz tests send thousands of requests to the same service)."""
    raw = {"data_dir": str(tmp_path_factory.mktemp("fuzz") / "data")}
    app = create_app(settings_from_mapping(raw, now=FIXTURE_NOW))
    return app.test_client()


# --- Test groups -------------------------------------------------------------------------------
# `-m unit`: the tests that run inside the test process alone, the quick loop (CONTRIBUTING, "Fast
# tests"). Every other test needs something outside it, and carries a marker saying what: `slow`,
# `browser`, `postgresql`, `fhir_server` (set here too when it uses those fixtures), or `process`:
# it (or a fixture or helper of its module) starts a process: gunicorn, the CLI, pip, a server.
# The markers are derived from the code, so a new test lands in the right group by itself.
OUTSIDE = ("slow", "browser", "postgresql", "fhir_server", "process")
FIXTURE_MARKERS = {"postgres_server": "postgresql", "fhir_server": "fhir_server"}
PROCESS_MODULES = ("subprocess",)  # subprocess.run, .Popen, ...
PROCESS_FUNCTIONS = ("start_service", "sekmet", "cluster")  # conftest's, servers.py's, postgres.py's


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        for fixture, marker in FIXTURE_MARKERS.items():
            if fixture in item.fixturenames:
                item.add_marker(marker)
        params = getattr(item, "callspec", None)
        if params and "postgresql" in params.params.values():  # a store fixture with params sqlite/postgresql
            item.add_marker("postgresql")
        defs = item._fixtureinfo.name2fixturedefs
        functions = [item.function, *(defs[name][-1].func for name in item.fixturenames if defs.get(name))]
        functions += _fixtures_asked_by_name(item, functions)
        if any(_starts_process(f) for f in functions):
            item.add_marker("process")
        if not any(item.get_closest_marker(m) for m in OUTSIDE):
            item.add_marker("unit")


@functools.cache
def _process_starters(path: str) -> frozenset[str]:
    """Names of the module's functions that start a process, directly or through another of them."""
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    calls: dict[str, set[str]] = {}
    starters = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        called = calls.setdefault(node.name, set())
        for call in (n for n in ast.walk(node) if isinstance(n, ast.Call)):
            func = call.func
            module = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else None
            if module in PROCESS_MODULES:
                starters.add(node.name)
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            if name in PROCESS_FUNCTIONS:
                starters.add(node.name)
            elif name:
                called.add(name)
    while True:
        more = {name for name, called in calls.items() if called & starters} - starters
        if not more:
            return frozenset(starters)
        starters |= more


def _fixtures_asked_by_name(item, functions: list[Any]) -> list[Any]:
    """Fixtures that these functions take with request.getfixturevalue("name")."""
    found = []
    for function in functions:
        for name in re.findall(r'getfixturevalue\("(\w+)"\)', inspect.getsource(inspect.unwrap(function))):
            defs = item.session._fixturemanager.getfixturedefs(name, item)
            found += [defs[-1].func] if defs else []
    return found


def _starts_process(func: Any) -> bool:
    func = inspect.unwrap(func)
    path = inspect.getsourcefile(func)
    if path is None or not path.startswith(str(ROOT)):
        return False  # pytest's own fixtures (tmp_path, capsys, ...)
    return func.__name__ in _process_starters(path)
