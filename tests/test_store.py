"""The store on SQLite and on a real PostgreSQL: migrations from empty, the schema equal to the
models, feedback joined to the cards issued, idempotent repeats, the per-rule report, concurrent
migrations and recording through an outage."""

from __future__ import annotations

import json
import multiprocessing
import re
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, select, text

from cds_service.feedback import FeedbackStore
from cds_service.feedback.migrate import current_revision, downgrade, head_revision, upgrade
from cds_service.feedback.migrations.tables import store_metadata
from cds_service.feedback.models import CardIssued, FeedbackItem
from cds_service.feedback.recorder import CardRecorder
from cds_service.feedback.report import per_rule, render_text, total

from . import postgres
from .conftest import SCENARIOS, load_json
from .timing import scaled

TABLES = {"alembic_version", "cards_issued", "feedback", "jwt_replay", "card_memory"}
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite3'}"
    return request.getfixturevalue("postgres_db")


def card(rule: str, indicator: str = "warning", at: datetime = T0, hook_instance: str | None = None) -> dict:
    return {
        "card_uuid": str(uuid.uuid4()),
        "service_id": "magnesium-order-check",
        "hook": "order-sign",
        "hook_instance": hook_instance or str(uuid.uuid4()),
        "rule_id": rule,
        "indicator": indicator,
        "issued_at": at,
    }


def answer(card_uuid: str, outcome: str, reason: str | None = None, minute: int = 1, comment: str = "") -> dict:
    item: dict = {"card": card_uuid, "outcome": outcome, "outcomeTimestamp": f"2026-11-20T09:{minute:02d}:00Z"}
    if outcome == "accepted":
        item["acceptedSuggestions"] = [{"id": "s-1"}]
    if reason:
        item["overrideReason"] = {"reason": {"system": "urn:mg-cds:override-reason", "code": reason}}
        if comment:
            item["overrideReason"]["userComment"] = comment
    return item


def migrated(url: str, **options) -> FeedbackStore:
    store = FeedbackStore(url, **options)
    store.ensure_schema()
    return store


def test_migrations_build_the_models_schema_from_empty_and_go_back_down(store_url):
    store = FeedbackStore(store_url)
    assert current_revision(store.engine) is None
    assert upgrade(store.engine) == (None, head_revision())
    assert set(inspect(store.engine).get_table_names()) == TABLES
    with store.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), store_metadata())
    assert differences == [], f"migrations and models disagree: {differences}"
    downgrade(store.engine, "base")
    assert set(inspect(store.engine).get_table_names()) == {"alembic_version"}
    assert upgrade(store.engine) == (None, head_revision())
    assert upgrade(store.engine) == (head_revision(), head_revision()), "a second run must change nothing"


def test_a_store_from_the_first_release_is_stamped_and_upgraded_keeping_its_rows(store_url):
    engine = create_engine(store_url)
    upgrade(engine, "0001")
    with engine.begin() as conn:  # the first release made its tables with create_all: no alembic_version
        conn.execute(text("DROP TABLE alembic_version"))
        conn.execute(
            text(
                "INSERT INTO feedback (service_id, card_uuid, outcome, outcome_timestamp, accepted_suggestions, "
                "received_at) VALUES ('magnesium-order-check', 'old-card', 'accepted', '2026-11-01T00:00:00Z', "
                "'[]', :at)"
            ),
            {"at": T0},
        )
    store = migrated(store_url)
    assert current_revision(store.engine) == head_revision()
    with store.engine.connect() as conn:
        rows = conn.execute(select(FeedbackItem.card_uuid, FeedbackItem.rule_id)).all()
    assert [tuple(r) for r in rows] == [("old-card", None)]


def test_feedback_is_joined_to_its_card_stored_once_and_without_free_text(store_url):
    store = migrated(store_url)
    issued = card("renal-severe", "critical", hook_instance="hook-1")
    store.record_cards([issued])
    items = [answer(issued["card_uuid"], "overridden", "nephrology-directed", comment="Mrs Smith, bed 4")]
    stored = store.add("magnesium-order-check", items)
    assert [(s.rule_id, s.outcome, s.reason_code) for s in stored] == [
        ("renal-severe", "overridden", "nephrology-directed")
    ]
    assert store.add("magnesium-order-check", items) == [], "a repeat is acknowledged, not stored twice"
    store.record_cards([issued])  # a card recorded twice stays one row
    with store.engine.connect() as conn:
        row = conn.execute(select(FeedbackItem.rule_id, FeedbackItem.hook_instance, FeedbackItem.user_comment)).one()
        assert conn.execute(select(CardIssued.card_uuid)).all() == [(issued["card_uuid"],)]
    assert tuple(row) == ("renal-severe", "hook-1", None)
    assert store.count() == 1


def test_feedback_that_overtakes_its_card_is_completed_when_the_card_is_recorded(store_url):
    store = migrated(store_url)
    issued = card("mg-low", "warning", hook_instance="hook-9")
    (early,) = store.add("magnesium-order-check", [answer(issued["card_uuid"], "accepted")])
    assert early.rule_id is None, "the card was not recorded yet"
    store.record_cards([issued, card("mg-high")])
    with store.engine.connect() as conn:
        row = conn.execute(select(FeedbackItem.rule_id, FeedbackItem.hook_instance)).one()
    assert tuple(row) == ("mg-low", "hook-9")


def test_user_comments_are_kept_only_when_configured(tmp_path):
    store = migrated(f"sqlite:///{tmp_path / 'store.sqlite3'}", keep_user_comments=True)
    store.add("magnesium-order-check", [answer("c-1", "overridden", "other", comment="pharmacy agreed")])
    with store.engine.connect() as conn:
        assert conn.execute(select(FeedbackItem.user_comment)).scalar_one() == "pharmacy agreed"


def test_report_counts_per_rule_and_period(store_url):
    store = migrated(store_url)
    old, new = T0 - timedelta(days=40), T0
    cards = [card("renal-severe", "critical", at=old), card("renal-severe", "critical", at=new)]
    cards += [card("renal-severe", "critical", at=new), card("interaction-fluoroquinolone", "warning", at=new)]
    store.record_cards(cards)
    answers = [
        answer(cards[0]["card_uuid"], "accepted"),
        answer(cards[1]["card_uuid"], "overridden", "nephrology-directed"),
        answer(cards[2]["card_uuid"], "overridden", "benefit-outweighs-risk"),
        answer(cards[3]["card_uuid"], "overridden", "nephrology-directed"),
        answer("never-issued-here", "overridden"),
    ]
    assert len(store.add("magnesium-order-check", answers)) == 5
    rows = {r.rule_id: r for r in per_rule(store)}
    expected_issued = Counter(c["rule_id"] for c in cards)
    assert {k: r.issued for k, r in rows.items()} == {**expected_issued, "unknown": 0}
    severe = rows["renal-severe"]
    assert (severe.accepted, severe.overridden) == (1, 2)
    assert severe.override_reasons == {"nephrology-directed": 1, "benefit-outweighs-risk": 1}
    assert severe.override_rate == pytest.approx(2 / 3)
    assert rows["unknown"].override_reasons == {"(no reason given)": 1}
    whole = total(list(rows.values()))
    assert (whole.issued, whole.accepted, whole.overridden) == (4, 1, 4)
    assert rows["interaction-fluoroquinolone"].as_dict()["override_rate"] == 1.0
    # Feedback counts by when it was received (all just now); cards by when they were issued.
    recent = {r.rule_id: r for r in per_rule(store, since=T0 - timedelta(days=1))}
    assert recent["renal-severe"].issued == 2 and recent["renal-severe"].accepted == 1
    text_report = render_text(list(rows.values()), None, store.dialect)
    assert "renal-severe" in text_report and "67%" in text_report and "nephrology-directed 1" in text_report


def test_report_counts_cards_not_clicks(store_url):
    """Accepted, then undone and accepted again, then overridden: one card, counted by its latest
    outcome; every event stays stored and the report says how many it folded."""
    store = migrated(store_url)
    cards = [card("renal-severe", "critical"), card("renal-severe", "critical"), card("mg-high", "critical")]
    store.record_cards(cards)
    clicks = [
        answer(cards[0]["card_uuid"], "accepted", minute=1),
        answer(cards[0]["card_uuid"], "accepted", minute=2),  # the same card accepted twice (create, delete)
        answer(cards[1]["card_uuid"], "accepted", minute=1),
        answer(cards[1]["card_uuid"], "overridden", "nephrology-directed", minute=5),  # changed their mind
        answer(cards[2]["card_uuid"], "overridden", "lab-not-current", minute=3),
    ]
    stored = store.add("magnesium-order-check", clicks)
    assert len(stored) == 5 and store.count() == 5  # raw events are all kept
    assert [s.first_for_card for s in stored] == [True, False, True, False, True]
    rows = {r.rule_id: r for r in per_rule(store)}
    severe = rows["renal-severe"]
    assert (severe.accepted, severe.overridden, severe.events) == (1, 1, 4)
    assert severe.override_reasons == {"nephrology-directed": 1}
    assert severe.override_rate == pytest.approx(0.5)
    assert (rows["mg-high"].overridden, rows["mg-high"].events) == (1, 1)
    assert "3 answered cards counted once each by their latest outcome (5 feedback events stored)" in render_text(
        list(rows.values()), None, store.dialect
    )
    # A later click in another batch still answers the same card once.
    store.add("magnesium-order-check", [answer(cards[2]["card_uuid"], "accepted", minute=9)])
    mg_high = {r.rule_id: r for r in per_rule(store)}["mg-high"]
    assert (mg_high.accepted, mg_high.overridden, mg_high.events) == (1, 0, 2)


def _upgrade_in_a_process(url: str) -> str:
    engine = create_engine(url)
    upgrade(engine)
    return current_revision(engine)


def test_replicas_starting_together_migrate_once_on_postgresql(postgres_db):
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        revisions = pool.map(_upgrade_in_a_process, [postgres_db] * 4)
    assert revisions == [head_revision()] * 4
    assert set(inspect(create_engine(postgres_db)).get_table_names()) == TABLES


def test_cards_issued_during_a_postgresql_outage_are_written_when_it_returns(postgres_server, postgres_db):
    store = migrated(postgres_db)
    recorder = CardRecorder(store)
    postgres.set_connections_allowed(postgres_server, postgres.libpq(postgres_db), False)
    try:
        rows = [card("mg-high", "critical") for _ in range(3)]
        recorder.record(rows)
        assert recorder.flush(timeout=1.0) is False, "nothing can be written while the database refuses"
    finally:
        postgres.set_connections_allowed(postgres_server, postgres.libpq(postgres_db), True)
    assert recorder.flush(timeout=scaled(20)) is True
    with store.engine.connect() as conn:
        written = {r.card_uuid for r in conn.execute(select(CardIssued.card_uuid))}
    assert written == {r["card_uuid"] for r in rows}
    recorder.close()


def test_replay_cache_on_postgresql_catches_replays_and_survives_an_outage(postgres_server, postgres_db):
    from cds_service.security.jwt_replay import StoreJwtReplayCache

    store = migrated(postgres_db)
    cache, other_replica = StoreJwtReplayCache(store.engine), StoreJwtReplayCache(FeedbackStore(postgres_db).engine)
    expires = datetime.now(UTC).timestamp() + 300
    assert cache.first_use("iss|jti-1", expires) is True
    assert other_replica.first_use("iss|jti-1", expires) is False, "another replica must see the replay"
    postgres.set_connections_allowed(postgres_server, postgres.libpq(postgres_db), False)
    try:  # the database is gone: hook calls go on, replays within this process are still caught
        assert cache.first_use("iss|jti-2", expires) is True
        assert cache.first_use("iss|jti-2", expires) is False
        assert cache.first_use("iss|jti-1", expires) is False
    finally:
        postgres.set_connections_allowed(postgres_server, postgres.libpq(postgres_db), True)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"database_url": "mysql://x/y"}, "database_url must be postgresql://"),
        ({"database_url": "postgresql://a/b", "store_url": "postgresql://a/c"}, "disagree"),
        ({"feedback": {"keep_user_comments": "yes"}}, "feedback.keep_user_comments must be true or false"),
        ({"feedback": {"keep_comments": True}}, "feedback.keep_comments: unknown key"),
        (
            {"security": {"trusted_issuers": [{"iss": "https://ehr.example.org", "jwks_file": "/nonexistent.json"}]}},
            "jwks_file: cannot read /nonexistent.json",
        ),
    ],
)
def test_store_and_key_settings_are_checked_at_start(raw, message):
    from cds_service.config import ConfigError, settings_from_mapping

    with pytest.raises(ConfigError, match=message):
        settings_from_mapping(raw)


def test_database_url_means_psycopg_3_and_the_old_key_still_works():
    from cds_service.config import settings_from_mapping

    assert (
        settings_from_mapping({"database_url": "postgres://u@h/db"}).store.database_url == "postgresql+psycopg://u@h/db"
    )
    assert settings_from_mapping({"store_url": "sqlite:////tmp/x.db"}).store.url == "sqlite:////tmp/x.db"


def test_the_card_record_keeps_how_orders_were_read_and_nothing_about_the_patient(make_app):
    """cards_issued keeps each card's reading (route class, use, setting), variant and data gaps: what a
    pharmacy committee needs to see why a rule fired, with no record ids, values or names."""
    app = make_app()
    body = load_json(SCENARIOS / "fq-cipro-magnesium-ordered" / "request.order-sign.json")
    cards = app.test_client().post("/cds-services/magnesium-order-sign", json=body).get_json()["cards"]
    assert app.extensions["card_recorder"].flush(timeout=10)
    store = app.extensions["feedback_store"]
    with store.engine.connect() as conn:
        rows = dict(conn.execute(select(CardIssued.card_uuid, CardIssued.explanation)).all())
    kept = json.loads(rows[cards[0]["uuid"]])
    assert kept["read_as"] == [
        {"order": "this order", "route": "enteral", "use": "long-term", "setting": "unknown"},
        {"order": "other order", "route": "enteral", "use": "long-term", "setting": "unknown"},
    ]
    assert not re.search(r"/|\d{4}-\d{2}|mg|[Cc]iprofloxacin|glycinate", rows[cards[0]["uuid"]])


def test_a_hook_calls_cards_are_recorded_as_returned_with_how_their_orders_were_read(make_app):
    """Each card returned is one row: its ids and codes, the call's time, and of its explanation only
    how the orders were read, the variant and which data were missing (built by the recorder's thread)."""
    app = make_app()
    request = load_json(SCENARIOS / "renal-contraindicated-cg" / "request.order-sign.json")
    before = datetime.now(UTC)
    response = app.test_client().post("/cds-services/magnesium-order-sign", json=request)
    after = datetime.now(UTC)
    assert response.status_code == 200
    cards = response.get_json()["cards"]
    assert cards
    recorder, store = app.extensions["card_recorder"], app.extensions["feedback_store"]
    assert recorder.flush(timeout=scaled(10))
    with store.engine.connect() as conn:
        rows = {r.card_uuid: r for r in conn.execute(select(CardIssued))}
    assert set(rows) == {c["uuid"] for c in cards}
    for returned in cards:
        row = rows[returned["uuid"]]
        explained = returned["extension"]["mg-cds.explanation"]
        kept = {
            "variant": explained.get("variant"),
            "read_as": explained.get("read_as", []),
            "data_gaps": sorted({g["topic"] for g in explained.get("data_gaps", ())}),
        }
        assert (row.service_id, row.hook, row.hook_instance) == ("magnesium-order-sign", "order-sign",
                                                                 request["hookInstance"])  # fmt: skip
        assert (row.rule_id, row.indicator, row.held_back) == (
            returned["source"]["topic"]["code"],
            returned["indicator"],
            None,
        )
        assert row.explanation == json.dumps(kept, sort_keys=True, separators=(",", ":"))
        issued_at = row.issued_at if row.issued_at.tzinfo else row.issued_at.replace(tzinfo=UTC)
        assert before <= issued_at <= after
