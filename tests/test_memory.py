"""Card memory through the API: a card shown at order-select is not repeated at order-sign (same
clinician, patient, encounter, rule, order and facts, within the window; critical cards always),
snooze override reasons silence a rule for a patient and product for every clinician until they
expire, nothing identifying is stored in the clear, and a database that fails means no memory,
never a failed call. On SQLite and on the real PostgreSQL; two gunicorn workers share it."""

from __future__ import annotations

import copy
import json
import time
from datetime import timedelta

import pytest
import requests
from sqlalchemy import create_engine, inspect, select, text

from cds_service.config import ConfigError, load_settings, settings_from_mapping
from cds_service.feedback.models import CardIssued
from cds_service.feedback.report import per_rule

from . import postgres
from .conftest import FIXTURE_NOW, SCENARIOS, SERVICE_FOR, load_json, start_service
from .test_operations import samples, scrape
from .timing import scaled

SELECT, SIGN = (f"/cds-services/{SERVICE_FOR[h]}" for h in ("order-select", "order-sign"))
SECRET = "test-memory-secret-0123456789"
FQ, RULE = "fq-cipro-magnesium-ordered", "interaction-fluoroquinolone"
MEMORY = {"memory": {"enabled": True, "secret": SECRET}}


def body(name: str, hook: str, **context) -> dict:
    request = copy.deepcopy(load_json(SCENARIOS / name / f"request.{hook}.json"))
    request["context"].update(context)
    if "encounterId" in context:
        request["prefetch"]["encounter"] = None  # the EHR had no Encounter to give: no fetch, no 412
    return request


def rules_of(response) -> list[str]:
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return sorted(c["source"]["topic"]["code"] for c in response.get_json()["cards"] if "topic" in c["source"])


@pytest.fixture(params=["sqlite", "postgresql"])
def memory_app(request, make_app):
    """make_app with card memory on, on SQLite (data_dir) or on a fresh PostgreSQL database."""
    config = copy.deepcopy(MEMORY)
    if request.param == "postgresql":
        config["database_url"] = request.getfixturevalue("postgres_db")

    def factory(extra: dict | None = None, now=FIXTURE_NOW):
        merged = {**config, **(extra or {})}
        merged["memory"] = {**config["memory"], **(extra or {}).get("memory", {})}
        return make_app(merged, now=now)

    return factory


def test_a_card_shown_at_select_is_not_repeated_at_sign(memory_app):
    client = memory_app().test_client()
    assert rules_of(client.post(SELECT, json=body(FQ, "order-select"))) == [RULE]
    sign = client.post(SIGN, json=body(FQ, "order-sign"))
    assert rules_of(sign) == []
    assert sign.get_json()["extension"]["mg-cds.memory"] == {"held_back": 1, "shown-at-select": 1, "snoozed": 0}
    # Another clinician signing the same order sees it: the memory is per clinician.
    assert rules_of(client.post(SIGN, json=body(FQ, "order-sign", userId="Practitioner/other"))) == [RULE]


def test_without_a_select_first_sign_shows_the_card(memory_app):
    assert rules_of(memory_app().test_client().post(SIGN, json=body(FQ, "order-sign"))) == [RULE]


def test_a_changed_dose_is_a_new_order(memory_app):
    client = memory_app().test_client()
    client.post(SELECT, json=body(FQ, "order-select"))
    changed = body(FQ, "order-sign")
    dosage = changed["context"]["draftOrders"]["entry"][0]["resource"].setdefault("dosageInstruction", [{}])
    dosage[0]["text"] = "two capsules twice a day"
    assert rules_of(client.post(SIGN, json=changed)) == [RULE]


def test_a_new_fact_makes_the_card_new(memory_app):
    """A new creatinine changes the renal estimate the card used: shown again. The same facts: not."""
    client = memory_app().test_client()
    assert rules_of(client.post(SELECT, json=body("renal-moderate-cg", "order-select"))) == ["renal-moderate"]
    assert rules_of(client.post(SIGN, json=body("renal-moderate-cg", "order-sign"))) == []
    sign = body("renal-moderate-cg", "order-sign")
    newer = copy.deepcopy(sign["prefetch"]["renal"]["entry"][0])
    newer["resource"].update(id="newer-creatinine", effectiveDateTime=(FIXTURE_NOW - timedelta(hours=2)).isoformat())
    newer["resource"]["valueQuantity"]["value"] = 1.4
    sign["prefetch"]["renal"]["entry"].insert(0, newer)
    assert rules_of(client.post(SIGN, json=sign)) == ["renal-moderate"]


def test_critical_cards_are_always_shown_again(memory_app):
    client = memory_app().test_client()
    assert "renal-severe" in rules_of(client.post(SELECT, json=body("renal-severe-cg", "order-select")))
    sign = client.post(SIGN, json=body("renal-severe-cg", "order-sign"))
    assert "renal-severe" in rules_of(sign)
    critical = next(c for c in sign.get_json()["cards"] if c["indicator"] == "critical")
    assert not any(r["code"].startswith("snooze") for r in critical.get("overrideReasons", ())), "no snooze offered"


def test_the_window_expires_by_the_clock(memory_app):
    memory_app().test_client().post(SELECT, json=body(FQ, "order-select"))
    within = memory_app(now=FIXTURE_NOW + timedelta(minutes=59)).test_client()
    assert rules_of(within.post(SIGN, json=body(FQ, "order-sign"))) == []
    after = memory_app(now=FIXTURE_NOW + timedelta(minutes=61)).test_client()
    assert rules_of(after.post(SIGN, json=body(FQ, "order-sign"))) == [RULE]
    longer = {"memory": {"rules": {RULE: {"window_minutes": 120}}}}  # a site's window for this rule
    memory_app(longer, now=FIXTURE_NOW + timedelta(minutes=100)).test_client().post(
        SELECT, json=body(FQ, "order-select")
    )
    later = memory_app(longer, now=FIXTURE_NOW + timedelta(minutes=190)).test_client()
    assert rules_of(later.post(SIGN, json=body(FQ, "order-sign"))) == []


def test_snooze_then_expiry(memory_app):
    app = memory_app()
    client = app.test_client()
    card = next(c for c in client.post(SIGN, json=body(FQ, "order-sign")).get_json()["cards"])
    snooze = next(r for r in card["overrideReasons"] if r["code"] == "snooze-30-days")
    assert snooze["display"] == "Snooze this alert for this patient and product for 30 days"
    feedback = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "overridden",
                "outcomeTimestamp": FIXTURE_NOW.isoformat(),
                "overrideReason": {"reason": {"system": snooze["system"], "code": snooze["code"]}},
            }
        ]
    }
    assert client.post(f"{SIGN}/feedback", json=feedback).get_json()["stored"] == 1
    # Every clinician, every hook: silent for this patient and product.
    later = memory_app(now=FIXTURE_NOW + timedelta(days=29)).test_client()
    other = later.post(SIGN, json=body(FQ, "order-sign", userId="Practitioner/other"))
    assert rules_of(other) == [] and other.get_json()["extension"]["mg-cds.memory"]["snoozed"] == 1
    assert rules_of(later.post(SELECT, json=body(FQ, "order-select"))) == []
    expired = memory_app(now=FIXTURE_NOW + timedelta(days=31)).test_client()
    assert rules_of(expired.post(SIGN, json=body(FQ, "order-sign"))) == [RULE]
    # The snoozed card is counted as held back, apart from the cards issued.
    for each in (app, later.application, expired.application):
        assert each.extensions["card_recorder"].flush(timeout=scaled(20))
    with app.extensions["feedback_store"].engine.connect() as conn:
        held = conn.execute(select(CardIssued.held_back).where(CardIssued.held_back.is_not(None))).scalars().all()
    assert held.count("snoozed") == 2
    numbers = {row.rule_id: row for row in per_rule(app.extensions["feedback_store"])}[RULE]
    assert numbers.held_back == {"snoozed": 2} and numbers.issued == 2  # the first card and the one after expiry
    counted = samples(scrape(), "cds_cards_held_back_total")
    assert counted[(("reason", "snoozed"), ("rule", RULE), ("service", SERVICE_FOR["order-sign"]))] >= 1


def test_an_info_card_only_when_the_site_asks(memory_app):
    client = memory_app({"memory": {"info_card": True}}).test_client()
    client.post(SELECT, json=body(FQ, "order-select"))
    cards = client.post(SIGN, json=body(FQ, "order-sign")).get_json()["cards"]
    assert len(cards) == 1 and cards[0]["indicator"] == "info" and "not repeated" in cards[0]["summary"]


def test_nothing_identifying_is_stored_in_the_clear(memory_app):
    app = memory_app()
    client = app.test_client()
    client.post(SELECT, json=body(FQ, "order-select", encounterId="enc-secret-77"))
    card = client.post(SIGN, json=body(FQ, "order-sign", userId="Practitioner/other")).get_json()["cards"][0]
    client.post(
        f"{SIGN}/feedback",
        json={"feedback": [{"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-11-15T12:01:00Z",
                            "overrideReason": {"reason": {"code": "snooze-6-months"}}}]},
    )  # fmt: skip
    assert app.extensions["card_recorder"].flush(timeout=scaled(20))
    secrets = ["fq-cipro-magnesium-ordered", "Practitioner/example", "Practitioner/other", "enc-secret-77",
               "ciprofloxacin", "Ciprofloxacin", "magnesium glycinate", "Magnesium glycinate"]  # fmt: skip
    engine = app.extensions["feedback_store"].engine
    with engine.connect() as conn:
        for table in inspect(engine).get_table_names():
            rows = conn.execute(text(f'SELECT * FROM "{table}"')).all()
            dump = json.dumps([list(map(str, r)) for r in rows])
            for secret in secrets:
                assert secret not in dump, f"{secret!r} in table {table}"
        kinds = conn.execute(text("SELECT kind, COUNT(*) FROM card_memory GROUP BY kind")).all()
    assert {k for k, _ in kinds} == {"shown", "card", "snooze"}


def test_a_database_that_fails_means_no_memory_not_a_failed_call(make_app, postgres_server, postgres_db):
    app = make_app({**MEMORY, "database_url": postgres_db})
    client = app.test_client()
    client.post(SELECT, json=body(FQ, "order-select"))
    postgres.set_connections_allowed(postgres_server, postgres.libpq(postgres_db), False)
    try:
        app.extensions["feedback_store"].engine.dispose()
        sign = client.post(SIGN, json=body(FQ, "order-sign"))
        assert sign.status_code == 200 and rules_of(sign) == [RULE], "without memory every card is shown"
        card = sign.get_json()["cards"][0]
        assert any(r["code"] == "snooze-30-days" for r in card["overrideReasons"])
    finally:
        postgres.set_connections_allowed(postgres_server, postgres.libpq(postgres_db), True)


def test_a_sqlite_store_that_fails_means_no_memory_either(make_app, tmp_path):
    app = make_app(MEMORY)
    client = app.test_client()
    client.post(SELECT, json=body(FQ, "order-select"))
    # The database file's folder is gone from under the running service (a full or unmounted volume).
    app.extensions["cds_service"].memory.store.engine = create_engine(f"sqlite:///{tmp_path}/gone/feedback.sqlite3")
    sign = client.post(SIGN, json=body(FQ, "order-sign"))
    assert sign.status_code == 200 and rules_of(sign) == [RULE]
    assert "mg-cds.memory" not in sign.get_json().get("extension", {})


def test_memory_needs_its_secret():
    with pytest.raises(ConfigError, match=r"memory\.secret"):
        settings_from_mapping({"memory": {"enabled": True}})
    with pytest.raises(ConfigError, match=r"memory\.rules\.no-such-rule"):
        settings_from_mapping({"memory": {"enabled": True, "secret": SECRET, "rules": {"no-such-rule": {}}}})
    settings = load_settings(environ={"CDS_SERVICE_MEMORY_SECRET": SECRET})
    assert settings.memory.secret == SECRET and not settings.memory.enabled
    assert SECRET not in repr(settings)


def test_two_gunicorn_workers_share_the_memory(tmp_path, postgres_db):
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({**MEMORY, "data_dir": str(tmp_path / "data"), "database_url": postgres_db}))
    proc, base = start_service(
        "--workers", "2", "--threads", "1", "--now", FIXTURE_NOW.isoformat(), "--config", str(config), cwd=tmp_path
    )
    try:
        select_call = requests.post(base + SELECT, json=body(FQ, "order-select"), timeout=scaled(30))
        assert [c["source"]["topic"]["code"] for c in select_call.json()["cards"]] == [RULE]
        pids = set()
        deadline = time.monotonic() + scaled(30)
        while len(pids) < 2 and time.monotonic() < deadline:  # until both workers have answered a sign
            sign = requests.post(base + SIGN, json=body(FQ, "order-sign"), timeout=scaled(30))
            assert sign.json()["cards"] == [], "every worker knows the card was shown at select"
            pids |= {line.get("pid") for line in _request_lines(proc) if line.get("path") == SIGN}
    finally:
        proc.terminate()
        proc.wait(timeout=scaled(30))
    assert len(pids - {None}) == 2, "both workers answered"


def _request_lines(proc) -> list[dict]:
    return [json.loads(line) for line in proc.log_path.read_text().splitlines() if line.startswith("{")]
