"""The service stays up when its neighbours fail (issue 28): each fault of the fault battery
reproduced with real parts (PostgreSQL refused, stopped and frozen; a read-only then writable SQLite
folder; a trickling FHIR server beside a healthy one; slow clients; an oversized chunked body), and
the behaviour asserted: what the EHR sees, what is kept, what is lost and counted."""

from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy import func, select

from cds_service.feedback.models import CardIssued

from . import postgres
from .test_operations import URL, hook_request, samples, scrape

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
        with caplog.at_level(logging.WARNING, logger="cds_service.feedback"):
            assert app.extensions["card_recorder"].close(timeout=2.0) is False
        retries = [r for r in caplog.records if "kept for retry" in r.getMessage()]
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
    import threading

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
