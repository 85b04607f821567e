"""The service stays up when its neighbours fail (issue 28): each fault of the fault battery
reproduced with real parts (PostgreSQL refused, stopped and frozen; a read-only then writable SQLite
folder; a trickling FHIR server beside a healthy one; slow clients; an oversized chunked body), and
the behaviour asserted: what the EHR sees, what is kept, what is lost and counted."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import func, select

from cds_service.feedback.models import CardIssued

from . import postgres
from .conftest import SCENARIOS, load_json
from .servers import stand_in
from .test_operations import URL, feedback_for, hook_request, samples, scrape

SPOOL = "cards-spool.jsonl"


def metric(name: str, **labels: str) -> float:
    return samples(scrape(), name).get(tuple(sorted(labels.items())), 0.0)


def cards_in(store) -> set[str]:
    with store.engine.connect() as conn:
        return set(conn.execute(select(CardIssued.card_uuid)).scalars())


# ---- 1. a store outage is not a CDS outage ----


@pytest.mark.postgresql
def test_readiness_means_able_to_answer_hooks_and_store_health_is_apart(make_app, postgres_server, postgres_db):
    client = make_app({"database_url": postgres_db}).test_client()
    assert client.get("/healthz/store").status_code == 200 and metric("cds_store_up") == 1
    postgres.set_connections_allowed(postgres_server, postgres.libpq(postgres_db), False)
    try:
        assert client.post(URL, json=hook_request()).status_code == 200
        for _probe in range(3):  # the shipped readinessProbe fails the pod after 2
            assert client.get("/readyz").status_code == 200, "a store outage must not take the pod out of service"
            assert client.get("/healthz").status_code == 200
        down = client.get("/healthz/store")
        assert down.status_code == 503 and down.get_json()["status"] == "unavailable"
        assert metric("cds_store_up") == 0, "the alert rule's gauge says the store is down"
    finally:
        postgres.set_connections_allowed(postgres_server, postgres.libpq(postgres_db), True)
    assert client.get("/healthz/store").status_code == 200 and metric("cds_store_up") == 1


# ---- 2. card records: kept through a stop while the store is down, or counted ----


@pytest.mark.postgresql
def test_cards_issued_while_postgresql_is_down_survive_a_stop_and_are_written_once(
    make_app, postgres_server, postgres_db, tmp_path, caplog
):
    app = make_app({"database_url": postgres_db})
    client = app.test_client()
    store = app.extensions["feedback_store"]
    postgres.set_connections_allowed(postgres_server, postgres.libpq(postgres_db), False)
    try:
        issued = set()
        for _call in range(10):
            issued |= {c["uuid"] for c in client.post(URL, json=hook_request()).get_json()["cards"]}
        assert len(issued) == 20
        recorder = app.extensions["card_recorder"]
        with caplog.at_level(logging.WARNING, logger="cds_service.feedback"):
            assert recorder.close(timeout=2.0) is False
        writer = recorder._thread.ident  # this app's writer only, not another test's
        retries = [r for r in caplog.records if "kept for retry" in r.getMessage() and r.thread == writer]
        assert len(retries) <= 2, f"the writer must back off while a stop waits, not spin ({len(retries)} warnings)"
        assert any("spooled" in r.getMessage() for r in caplog.records), "the stop says where the cards went"
    finally:
        postgres.set_connections_allowed(postgres_server, postgres.libpq(postgres_db), True)
    assert cards_in(store) == set()
    spooled = [json.loads(line)["card_uuid"] for line in (tmp_path / "data" / SPOOL).read_text().splitlines()]
    assert set(spooled) == issued
    make_app({"database_url": postgres_db})  # the next start replays the spool
    assert cards_in(store) == issued
    assert not (tmp_path / "data" / SPOOL).exists()
    (tmp_path / "data" / SPOOL).write_text("\n".join(json.dumps({**_row(u)}) for u in issued) + "\n")
    make_app({"database_url": postgres_db})  # the same records spooled again: no duplicate
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(CardIssued)).scalar_one() == len(issued)


def _row(card_uuid: str) -> dict:
    return {
        "card_uuid": card_uuid,
        "service_id": "magnesium-order-check",
        "hook": "order-sign",
        "hook_instance": "h",
        "rule_id": "renal-severe",
        "indicator": "critical",
        "issued_at": "2026-11-15T12:00:00+00:00",
        "held_back": None,
    }


def test_the_batch_being_written_at_a_stop_is_counted_not_dropped(make_app, tmp_path):
    """A stop while the writer holds a batch: that batch reaches the spool too, and nothing else is lost."""
    app = make_app()
    recorder, store = app.extensions["card_recorder"], app.extensions["feedback_store"]
    entered, release = threading.Event(), threading.Event()
    original = store.record_cards

    def stuck(rows):  # the database hangs on this batch until after the stop
        entered.set()
        release.wait(10)
        return original(rows)

    store.record_cards = stuck
    recorder.record([_row(f"card-{i}") | {"issued_at": _now()} for i in range(5)])
    assert entered.wait(5)
    assert recorder.close(timeout=0.5) is False
    release.set()
    spooled = (tmp_path / "data" / SPOOL).read_text().splitlines()
    assert len(spooled) == 5, "the in-flight batch is spooled (a duplicate of a late commit is ignored at replay)"


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


def test_a_row_that_cannot_be_built_is_counted_and_logged_and_the_others_are_written(make_app, caplog):
    """Rows a hook call queues are built by the writer's thread: one that fails there is lost alone,
    counted and logged by its error's type, and the writer goes on."""
    app = make_app()
    recorder, store = app.extensions["card_recorder"], app.extensions["feedback_store"]

    class Broken:
        def row(self):
            raise KeyError("a value that must not reach the log")

    before = metric("cds_cards_unrecorded_total", reason="unbuildable")
    with caplog.at_level(logging.ERROR, logger="cds_service.feedback"):
        recorder.record([_row("built-1") | {"issued_at": _now()}, Broken(), _row("built-2") | {"issued_at": _now()}])
        assert recorder.flush(timeout=5)
        recorder.record([_row("built-3") | {"issued_at": _now()}])
        assert recorder.flush(timeout=5)
    assert cards_in(store) == {"built-1", "built-2", "built-3"}
    assert metric("cds_cards_unrecorded_total", reason="unbuildable") - before == 1
    assert any("could not be built" in r.getMessage() for r in caplog.records)


def test_a_spool_that_cannot_be_written_counts_and_logs_every_lost_card(make_app, tmp_path, caplog):
    app = make_app()
    recorder = app.extensions["card_recorder"]
    (tmp_path / "data" / SPOOL).mkdir()  # the spool's path is taken: it cannot be written
    before = metric("cds_cards_unrecorded_total", reason="spool_unwritable")
    with caplog.at_level(logging.ERROR, logger="cds_service.feedback"):
        recorder.close(timeout=0.1)
        recorder.record([_row("late-1") | {"issued_at": _now()}, _row("late-2") | {"issued_at": _now()}])
    assert metric("cds_cards_unrecorded_total", reason="spool_unwritable") - before == 2
    assert any("2 card record(s) lost" in r.getMessage() for r in caplog.records)


# ---- 3. store connections: discarded when broken, bounded when the database hangs ----


@contextmanager
def read_only_folder(folder: Path) -> Iterator[Callable[[bool], None]]:
    """A folder whose file system can be made read-only and writable again: a tmpfs remounted
    (as root, who ignores permissions), or the permission bits otherwise."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(folder)], check=True)

        def set_read_only(read_only: bool) -> None:
            mode = "ro" if read_only else "rw"
            subprocess.run(["mount", "-o", f"remount,{mode}", str(folder)], check=True)

        try:
            yield set_read_only
        finally:
            subprocess.run(["umount", "-l", str(folder)], check=False)
        return

    def set_permissions(read_only: bool) -> None:
        for path in (folder, *folder.iterdir()):
            path.chmod((0o555 if path.is_dir() else 0o444) if read_only else (0o755 if path.is_dir() else 0o644))

    try:
        yield set_permissions
    finally:
        set_permissions(False)


def test_a_sqlite_store_that_was_read_only_recovers_when_it_is_writable(make_app, tmp_path):
    with read_only_folder(tmp_path / "data") as set_read_only:
        make_app().extensions["feedback_store"].engine.dispose()  # creates and migrates the store
        set_read_only(True)
        app = make_app()  # started on a read-only folder: the schema is read, nothing can be written
        client = app.test_client()
        cards = client.post(URL, json=hook_request()).get_json()["cards"]
        assert client.post(f"{URL}/feedback", json=feedback_for(cards[0], "accepted")).status_code == 503
        assert client.get("/healthz/store").status_code == 503, "a read-only store is not healthy"
        assert client.get("/readyz").status_code == 200
        set_read_only(False)
        answered = client.post(f"{URL}/feedback", json=feedback_for(cards[0], "accepted"))
        assert answered.status_code == 200 and answered.get_json()["stored"] == 1, "the read-only connection is gone"
        assert client.get("/healthz/store").status_code == 200
        assert app.extensions["card_recorder"].flush(timeout=10)
        assert {c["uuid"] for c in cards} <= cards_in(app.extensions["feedback_store"])
        app.extensions["card_recorder"].close(timeout=1)
        app.extensions["feedback_store"].engine.dispose()


@contextmanager
def frozen(admin_url: str) -> Iterator[None]:
    """SIGSTOP the PostgreSQL postmaster and every process of it: the kernel still accepts and
    acknowledges, nothing answers. SIGCONT on the way out."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        data = conn.execute("SHOW data_directory").fetchone()[0]
    postmaster = int(Path(data, "postmaster.pid").read_text().split()[0])
    children = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True, text=True).stdout.split()
    os.kill(postmaster, signal.SIGSTOP)  # first: it starts no new backend while its children are stopped
    stopped = [postmaster]
    try:
        for pid in map(int, children):
            with suppress(ProcessLookupError):  # a backend that exited since pgrep needs no stopping
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)
        yield
    finally:  # every process stopped is let go, even when stopping a later one failed
        for pid in stopped:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


@pytest.mark.postgresql
def test_feedback_answers_503_promptly_while_postgresql_is_frozen(make_app, postgres_server, postgres_db):
    client = make_app({"database_url": postgres_db}).test_client()
    cards = client.post(URL, json=hook_request()).get_json()["cards"]
    assert client.post(f"{URL}/feedback", json=feedback_for(cards[0], "accepted")).status_code == 200  # pooled
    answers: list[tuple[int, str | None, float]] = []

    def post(card: dict) -> None:
        started = time.monotonic()
        response = client.post(f"{URL}/feedback", json=feedback_for(card, "overridden", "nephrology-directed"))
        answers.append((response.status_code, response.headers.get("Retry-After"), time.monotonic() - started))

    with frozen(postgres_server):
        for card in cards:  # the first on a pooled connection, the second on a new one
            caller = threading.Thread(target=post, args=(card,))
            caller.start()
            caller.join(timeout=8)  # the old code waited for the database; thaw it after 8 s
        hook = client.post(URL, json=hook_request())
        assert hook.status_code == 200 and len(hook.get_json()["cards"]) == 2
    caller.join(timeout=30)
    assert [(status, retry) for status, retry, _ in answers] == [(503, "5"), (503, "5")]
    assert max(seconds for *_, seconds in answers) < 4.0, f"answered within the 3 s bound: {answers}"
    retried = client.post(f"{URL}/feedback", json=feedback_for(cards[1], "overridden", "nephrology-directed"))
    assert retried.status_code == 200 and retried.get_json()["stored"] == 1


@pytest.mark.postgresql
def test_a_pod_holds_at_most_the_connections_it_announces(tmp_path, postgres_server, postgres_db):
    from concurrent.futures import ThreadPoolExecutor

    import requests

    from .conftest import start_service
    from .test_operations import _serve_env, _write_config

    config = _write_config(tmp_path, database_url=postgres_db)
    proc, base = start_service("--workers", "2", "--threads", "3", "--config", str(config), env=_serve_env(tmp_path))
    try:
        reason = {"reason": {"system": "urn:mg-cds:override-reason", "code": "other"}}
        at = "2026-11-15T12:05:00Z"
        items = [
            {"card": f"c-{i}", "outcome": "overridden", "overrideReason": reason, "outcomeTimestamp": at}
            for i in range(60)
        ]
        with ThreadPoolExecutor(12) as pool:
            statuses = list(
                pool.map(
                    lambda item: (
                        requests.post(f"{base}{URL}/feedback", json={"feedback": [item]}, timeout=30).status_code
                    ),
                    items,
                )
            )
        name = postgres.libpq(postgres_db).rsplit("/", 1)[1]
        with psycopg.connect(postgres_server, autocommit=True) as conn:
            held = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)).fetchone()[0]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert statuses == [200] * 60
    assert "at most 8 PostgreSQL connections from this pod (2 workers x 4" in proc.log_path.read_text()
    assert 0 < held <= 8


# ---- 4. one slow FHIR server does not starve the healthy ones ----


class Trickle(BaseHTTPRequestHandler):
    """A FHIR server that answers every search with headers at once, then a byte a second: every
    socket read succeeds well within any per-read timeout, the response never ends."""

    requests_seen = 0
    open_connections = 0
    lock = threading.Lock()

    def do_GET(self):
        with Trickle.lock:
            Trickle.requests_seen += 1
            Trickle.open_connections += 1
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.flush()
            for _second in range(40):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(1)
        except OSError:
            pass  # the client closed its socket: what the service must do at its deadline
        finally:
            with Trickle.lock:
                Trickle.open_connections -= 1
            self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def trickling_server() -> Iterator[str]:
    with stand_in(Trickle) as base:
        yield base


def fetch_mode(name: str, server: str) -> dict:
    """The scenario's order-sign call with no prefetch at all: every key is fetched from `server`."""
    body = load_json(SCENARIOS / name / "request.order-sign.json")
    del body["prefetch"]
    body["fhirServer"] = server
    return body


@pytest.mark.fhir_server
def test_a_trickling_fhir_server_does_not_starve_a_healthy_one(make_app, fhir_server, trickling_server):
    open_server = {"allow_http": True, "allow_without_token": True}
    app = make_app(
        {"fhir": {"servers": [{"base_url": fhir_server, **open_server}, {"base_url": trickling_server, **open_server}]}}
    )
    healthy = fetch_mode("renal-severe-cg", fhir_server)
    expected = {c["source"]["topic"]["code"] for c in app.test_client().post(URL, json=healthy).get_json()["cards"]}
    assert "renal-severe" in expected
    before_open = metric("cds_fhir_fetch_failures_total", reason="circuit_open")
    slow_answers: list[int] = []

    def slow_call() -> None:
        response = app.test_client().post(URL, json=fetch_mode("renal-severe-cg", trickling_server))
        slow_answers.append(response.status_code)

    callers = [threading.Thread(target=slow_call) for _ in range(16)]
    for caller in callers:
        caller.start()
    time.sleep(0.5)  # the trickle holds every fetch it was sent
    found = []
    for _call in range(9):
        cards = app.test_client().post(URL, json=healthy).get_json()["cards"]
        found.append({c["source"]["topic"]["code"] for c in cards})
    for caller in callers:
        caller.join(timeout=30)
    assert found == [expected] * 9, "calls to the healthy server keep the patient's data"
    assert slow_answers == [200] * 16, "calls to the slow server answer, with the data gap on the cards"
    # Later calls to the slow server fail fast (circuit open) instead of holding threads until the deadline.
    started = time.monotonic()
    late = app.test_client().post(URL, json=fetch_mode("renal-severe-cg", trickling_server))
    assert late.status_code == 200 and time.monotonic() - started < 1.0
    assert metric("cds_fhir_fetch_failures_total", reason="circuit_open") > before_open
    deadline = time.monotonic() + 5
    while Trickle.open_connections and time.monotonic() < deadline:
        time.sleep(0.1)
    assert Trickle.open_connections == 0, "the service closed its sockets to the slow server at the deadline"


# ---- 6. an oversized body is 413 however it is framed ----


def test_an_oversized_chunked_body_is_413_and_a_small_chunked_one_is_served(tmp_path):
    import requests

    from .conftest import start_service
    from .test_operations import _serve_env, _write_config

    config = _write_config(tmp_path, limits={"max_body_bytes": 1_000_000})
    proc, base = start_service("--config", str(config), env=_serve_env(tmp_path))

    def chunked(body: bytes, piece: int = 65536) -> Iterator[bytes]:  # no length known: Transfer-Encoding: chunked
        yield from (body[i : i + piece] for i in range(0, len(body), piece))

    try:
        huge = b'{"hook": "order-sign", "padding": "' + b"a" * 3_000_000 + b'"}'
        too_large = requests.post(f"{base}{URL}", data=chunked(huge), headers={"Content-Type": "application/json"})
        small = json.dumps(hook_request()).encode()
        served = requests.post(f"{base}{URL}", data=chunked(small, 1000), headers={"Content-Type": "application/json"})
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert too_large.status_code == 413 and too_large.json()["resourceType"] == "OperationOutcome"
    assert served.status_code == 200 and len(served.json()["cards"]) == 2


# ---- 5. slow clients: the shipped nginx front holds them, gunicorn gets whole requests ----


@contextmanager
def shipped_front(tmp_path: Path) -> Iterator[str]:
    """gunicorn as the Deployment runs it (2 workers x 8 threads, signed calls only) behind Debian's
    nginx with the shipped deploy/nginx/nginx.conf, its ports and /tmp moved; yields nginx's URL."""
    import requests

    from .conftest import start_service
    from .servers import free_port, nginx_front, nginx_installed, signed_config

    if not nginx_installed():
        if os.environ.get("CI"):
            pytest.fail("nginx not installed (scripts/ensure-debian-packages.sh installs Debian's nginx-light)")
        pytest.skip("nginx not installed (Debian: apt-get install nginx-light)")
    port, app_port = free_port(), free_port()
    config = signed_config(tmp_path, port)
    app, _ = start_service(
        *("--host", "127.0.0.1", "--workers", "2", "--threads", "8", "--config", str(config)),
        port=app_port,
        env={"PATH": str(Path(sys.executable).parent)},
    )
    front = nginx_front(tmp_path, port, app_port)
    base = f"http://127.0.0.1:{port}"
    try:
        for _try in range(50):
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        yield base
    finally:
        front.terminate()
        front.wait(timeout=10)
        app.terminate()
        app.wait(timeout=30)


def test_two_hundred_slow_clients_leave_hook_calls_and_liveness_answering(tmp_path):
    import requests

    from deploy.image_probe import _bearer

    from .servers import SlowClients

    with shipped_front(tmp_path) as base:
        port = int(base.rsplit(":", 1)[1])
        body = json.dumps(hook_request()).encode()
        hook = "/cds-services/magnesium-order-sign"
        with SlowClients(port, 200):
            time.sleep(2)  # every slow connection open and sending
            calls, probes = [], []
            for _round in range(5):
                headers = {"Content-Type": "application/json", **_bearer(tmp_path, base, hook)}
                response = requests.post(f"{base}{hook}", data=body, headers=headers, timeout=2)
                calls.append((response.status_code, len(response.json().get("cards", []))))
                probes.append(requests.get(f"{base}/healthz", timeout=2).status_code)
        unsigned = requests.post(f"{base}{hook}", data=body, headers={"Content-Type": "application/json"}, timeout=5)
    assert calls == [(200, 2)] * 5 and probes == [200] * 5
    assert unsigned.status_code == 401, "a call through nginx is not a loopback call"


@pytest.mark.postgresql
def test_sigterm_while_postgresql_is_stopped_spools_the_cards_and_the_next_start_writes_them(
    tmp_path, postgres_server, postgres_db
):
    """The issue's case under gunicorn: cards issued while PostgreSQL is stopped, then SIGTERM."""
    import requests

    from .conftest import start_service
    from .test_operations import _serve_env, _write_config

    config = _write_config(tmp_path, database_url=postgres_db)
    args = ("--workers", "2", "--config", str(config))
    proc, base = start_service(*args, env=_serve_env(tmp_path))
    with postgres.stopped(postgres_server):
        issued = set()
        for _call in range(30):
            response = requests.post(f"{base}{URL}", json=hook_request(), timeout=10)
            issued |= {c["uuid"] for c in response.json()["cards"]}
        proc.terminate()
        assert proc.wait(timeout=30) == 0
    log = proc.log_path.read_text()
    assert log.count("kept for retry") <= 4, "one warning a minute per worker, not a spin"
    spooled = {json.loads(line)["card_uuid"] for line in (tmp_path / "data" / SPOOL).read_text().splitlines()}
    assert spooled == issued and len(issued) == 60, "every card issued reached the spool"
    again, _ = start_service(*args, env=_serve_env(tmp_path))  # replays the spool before serving
    again.terminate()
    assert again.wait(timeout=30) == 0
    with psycopg.connect(postgres.libpq(postgres_db)) as conn:
        stored = {row[0] for row in conn.execute("SELECT card_uuid FROM cards_issued")}
    assert stored == issued and not (tmp_path / "data" / SPOOL).exists()


@pytest.mark.postgresql
def test_a_service_started_while_postgresql_refuses_serves_hooks_and_catches_up(make_app, postgres_server, postgres_db):
    """A pod (re)started during an outage: before, the start failed, so a rollout or a crash during
    the outage took hooks down too. Now hooks are served, and the store gets its schema and the
    waiting cards when it answers."""
    postgres.set_connections_allowed(postgres_server, postgres.libpq(postgres_db), False)
    try:
        app = make_app({"database_url": postgres_db})  # an empty database, unreachable
        client = app.test_client()
        cards = client.post(URL, json=hook_request()).get_json()["cards"]
        assert len(cards) == 2
        assert client.post(f"{URL}/feedback", json=feedback_for(cards[0], "accepted")).status_code == 503
        assert client.get("/readyz").status_code == 200 and client.get("/healthz/store").status_code == 503
    finally:
        postgres.set_connections_allowed(postgres_server, postgres.libpq(postgres_db), True)
    assert client.get("/healthz/store").status_code == 200, "the schema is created once the store answers"
    assert client.post(f"{URL}/feedback", json=feedback_for(cards[0], "accepted")).get_json()["stored"] == 1
    assert app.extensions["card_recorder"].flush(timeout=20)
    assert {c["uuid"] for c in cards} <= cards_in(app.extensions["feedback_store"])


@pytest.mark.postgresql
def test_hook_calls_with_card_memory_wait_on_a_frozen_postgresql_once_not_every_time(
    make_app, postgres_server, postgres_db
):
    from .test_memory import FQ, MEMORY, SELECT, SIGN, body

    client = make_app({**MEMORY, "database_url": postgres_db}).test_client()
    client.post(SELECT, json=body(FQ, "order-select"))  # memory's connections pooled
    seconds, statuses = [], []
    with frozen(postgres_server):
        for _call in range(4):
            started = time.monotonic()
            statuses.append(client.post(SIGN, json=body(FQ, "order-sign")).status_code)
            seconds.append(time.monotonic() - started)
    assert statuses == [200] * 4, "every card shown, without memory"
    # the store's bounds: one call waits about 2.5 s (a 0.5 s check, a 2 s connect); margins for a loaded machine
    assert max(seconds) < 5.0 and sum(s > 1.5 for s in seconds) <= 1, f"one call waits, the rest do not: {seconds}"
