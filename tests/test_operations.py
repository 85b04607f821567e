"""Operating the service: metrics, JSON logs with request ids, readiness, a failing database, the
per-rule report against /metrics after a scripted session, concurrent feedback from several
processes, and a graceful stop. PostgreSQL tests use a real server (tests/postgres.py)."""

from __future__ import annotations

import http.server
import json
import logging
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from cds_service import metrics
from cds_service.feedback.migrate import head_revision
from cds_service.feedback.models import CardIssued
from cds_service.logs import JsonFormatter

from . import postgres
from .conftest import FIXTURE_NOW, SCENARIOS, SERVICE, load_json, scenario_cases, start_service
from .timing import scaled

SIGNED = [name for name, hook in scenario_cases() if hook == "order-sign"]  # the scenarios sent at order-sign

URL = f"/cds-services/{SERVICE}"


def samples(text: str, name: str) -> dict[tuple, float]:
    """{sorted label items: value} for one metric family in a Prometheus exposition."""
    found: dict[tuple, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                key = tuple(sorted(sample.labels.items()))
                found[key] = found.get(key, 0.0) + sample.value
    return found


def total_by(values: dict[tuple, float], *labels: str) -> Counter:
    out: Counter = Counter()
    for key, value in values.items():
        d = dict(key)
        out[tuple(d[label] for label in labels)] += value
    return out


def hook_request(name: str = "dialysis-hypomag-iv", hook: str = "order-sign") -> dict:
    return load_json(SCENARIOS / name / f"request.{hook}.json")


def feedback_for(card: dict, outcome: str, reason: str | None = None) -> dict:
    item: dict = {"card": card["uuid"], "outcome": outcome, "outcomeTimestamp": "2026-11-15T12:05:00Z"}
    if outcome == "accepted":
        item["acceptedSuggestions"] = [{"id": s["uuid"]} for s in card.get("suggestions", [])[:1]]
    if reason:
        item["overrideReason"] = {"reason": {"system": "urn:mg-cds:override-reason", "code": reason}}
    return {"feedback": [item]}


# ---- in process: metrics, logs, request ids, readiness, a failing database ----


def scrape() -> str:
    """What the metrics port serves, read in process (the test app has no metrics server)."""
    return metrics.exposition()[0].decode()


def test_metrics_count_requests_cards_and_jwt_rejections(make_app):
    client = make_app().test_client()
    before = scrape()
    cards = client.post(URL, json=hook_request()).get_json()["cards"]
    client.post(URL, json={"hook": "order-sign"})  # 400
    refused = client.post(URL, json=hook_request(), environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert refused.status_code == 401
    assert client.get("/metrics").status_code == 404, "metrics are served on their own port, not the EHR's"
    text = scrape()

    def delta(name: str, **labels: str) -> float:
        key = tuple(sorted(labels.items()))
        return samples(text, name).get(key, 0.0) - samples(before, name).get(key, 0.0)

    assert delta("cds_http_requests_total", endpoint="service", service=SERVICE, status="200") == 1
    assert delta("cds_http_requests_total", endpoint="service", service=SERVICE, status="400") == 1
    assert delta("cds_http_request_duration_seconds_count", endpoint="service", service=SERVICE, status="200") == 1
    for card in cards:
        rule, indicator = card["source"]["topic"]["code"], card["indicator"]
        assert delta("cds_cards_issued_total", service=SERVICE, rule=rule, indicator=indicator) == 1
    assert delta("cds_jwt_rejections_total", reason="no trusted issuers configured") == 1


def test_jwt_rejection_reasons_are_a_bounded_label_set(make_app):
    app = make_app(
        {
            "security": {
                "trusted_issuers": [{"iss": "https://ehr.example.org", "jwks_url": "https://ehr.example.org/jwks"}]
            }
        }
    )
    client = app.test_client()
    before = samples(scrape(), "cds_jwt_rejections_total")
    client.post(URL, json=hook_request())
    client.post(URL, json=hook_request(), headers={"Authorization": "Bearer not.a.jwt"})
    after = samples(scrape(), "cds_jwt_rejections_total")
    grew = {dict(k)["reason"]: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}
    assert grew == {"missing bearer token": 1, "malformed token": 1}


def test_one_json_log_line_per_request_with_the_callers_request_id(make_app, caplog):
    client = make_app().test_client()
    with caplog.at_level(logging.INFO, logger="cds_service.request"):
        response = client.post(URL, json=hook_request(), headers={"X-Request-Id": "ehr-abc.123"})
        hostile = client.get("/cds-services", headers={"X-Request-Id": "bad id; <script>" + "x" * 200})
    assert response.headers["X-Request-Id"] == "ehr-abc.123"
    generated = hostile.headers["X-Request-Id"]
    assert len(generated) == 32 and "script" not in generated, "an unsafe request id is replaced, not echoed"
    lines = [json.loads(JsonFormatter().format(r)) for r in caplog.records if r.name == "cds_service.request"]
    assert len(lines) == 2
    call = lines[0]
    rules = sorted(c["source"]["topic"]["code"] for c in response.get_json()["cards"])
    assert call["request_id"] == "ehr-abc.123" and call["service"] == SERVICE and call["hook"] == "order-sign"
    assert call["status"] == 200 and call["cards"] == 2 and call["rules"] == rules and call["ms"] > 0
    assert {"time", "level", "logger", "event", "method", "path", "endpoint"} <= set(call)
    body = hook_request()
    patient = body["prefetch"]["patient"]
    for value in (body["context"]["patientId"], patient["birthDate"], body["hookInstance"]):
        assert value not in json.dumps(lines), f"patient data {value!r} in the log"
    assert lines[1]["request_id"] == generated


def test_exceptions_are_logged_without_their_message(caplog):
    record = logging.LogRecord("cds_service", logging.ERROR, __file__, 1, "unhandled error", (), None)
    try:
        raise ValueError("creatinine 2.9 for MRN 12345")
    except ValueError:
        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert "\n" not in line and "12345" not in line
    parsed = json.loads(line)
    assert parsed["error"] == "ValueError" and parsed["where"][0].endswith(
        "test_exceptions_are_logged_without_their_message"
    )


@pytest.mark.postgresql
def test_a_failing_database_never_breaks_hook_calls_and_loses_no_acknowledged_feedback(
    make_app, postgres_server, postgres_db
):
    app = make_app({"database_url": postgres_db})
    client = app.test_client()
    cards = client.post(URL, json=hook_request()).get_json()["cards"]
    assert client.post(f"{URL}/feedback", json=feedback_for(cards[0], "accepted")).get_json()["stored"] == 1
    postgres.set_connections_allowed(postgres_server, postgres.libpq(postgres_db), False)
    try:
        during = client.post(URL, json=hook_request())
        assert during.status_code == 200 and len(during.get_json()["cards"]) == 2
        refused = client.post(f"{URL}/feedback", json=feedback_for(cards[1], "overridden", "nephrology-directed"))
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "5"
        assert refused.get_json()["resourceType"] == "OperationOutcome"
        assert "retry" in refused.get_json()["issue"][0]["diagnostics"]
        assert client.get("/readyz").status_code == 200, "readiness means: can answer hooks"
        assert client.get("/healthz/store").status_code == 503
    finally:
        postgres.set_connections_allowed(postgres_server, postgres.libpq(postgres_db), True)
    retried = client.post(f"{URL}/feedback", json=feedback_for(cards[1], "overridden", "nephrology-directed"))
    assert retried.status_code == 200 and retried.get_json()["stored"] == 1
    assert client.get("/healthz/store").get_json() == {"status": "ok", "store": "postgresql"}
    store = app.extensions["feedback_store"]
    assert store.count() == 2, "both acknowledged items are there"
    assert app.extensions["card_recorder"].flush(timeout=scaled(20))
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(CardIssued)).scalar_one() == 4


# ---- `cds-service serve` (gunicorn) with PostgreSQL ----


def _serve_env(tmp_path: Path) -> dict[str, str]:
    return {"PATH": str(Path(sys.executable).parent), "CDS_SERVICE_DATA_DIR": str(tmp_path / "data")}


def _write_config(tmp_path: Path, **config) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data"), **config}))
    return path


def _post_feedback_batch(base: str, worker: int, batches: int) -> tuple[int, int]:
    """One client process: `batches` posts of two new items, each post then repeated once."""
    posted = stored = 0
    with requests.Session() as session:
        for i in range(batches):
            items = [
                {
                    "card": f"card-{worker}-{i}-{k}",
                    "outcome": "overridden",
                    "overrideReason": {"reason": {"system": "urn:mg-cds:override-reason", "code": "other"}},
                    "outcomeTimestamp": "2026-11-15T12:05:00Z",
                }
                for k in range(2)
            ]
            for _repeat in range(2):
                response = session.post(
                    f"{base}/cds-services/{SERVICE}/feedback", json={"feedback": items}, timeout=scaled(30)
                )
                response.raise_for_status()
                stored += response.json()["stored"]
            posted += len(items)
    return posted, stored


@pytest.mark.postgresql
def test_concurrent_feedback_from_several_processes_is_all_stored_once(tmp_path, postgres_db):
    config = _write_config(tmp_path, database_url=postgres_db)
    proc, base = start_service("--workers", "3", "--config", str(config), env=_serve_env(tmp_path), cwd=tmp_path)
    try:
        with ProcessPoolExecutor(4) as pool:
            results = list(pool.map(_post_feedback_batch, [base] * 4, range(4), [25] * 4))
    finally:
        proc.terminate()
        proc.wait(timeout=scaled(30))
    posted = sum(p for p, _ in results)
    assert posted == 200
    assert sum(s for _, s in results) == posted, "every new item acknowledged as stored exactly once"
    report = _json_report(config, tmp_path)
    assert report["total"]["overridden"] == posted and report["rules"][0]["rule"] == "unknown"


@pytest.mark.postgresql
def test_scripted_session_report_and_metrics_agree(tmp_path, postgres_db):
    """Hook calls for every scenario and feedback on two cards in three, then `cds-service report`
    and /metrics must both give the per-rule counts the responses imply."""
    config = _write_config(tmp_path, database_url=postgres_db)
    args = ("--workers", "2", "--now", FIXTURE_NOW.isoformat(), "--config", str(config))
    proc, base = start_service(*args, env=_serve_env(tmp_path), cwd=tmp_path)
    expected = {"issued": Counter(), "accepted": Counter(), "overridden": Counter(), "reasons": Counter()}
    request_ids = []
    try:
        cards = []
        for name in SIGNED:
            request_ids.append(f"session-{name}")
            response = requests.post(
                f"{base}{URL}", json=hook_request(name), headers={"X-Request-Id": request_ids[-1]}, timeout=30
            )
            assert response.status_code == 200 and response.headers["X-Request-Id"] == request_ids[-1]
            cards += response.json()["cards"]
        assert len(cards) > 50
        # Clinicians answer after reading: by then the cards are recorded (in the background, within ~0.3 s).
        # Feedback that overtakes its card is joined by the report, but counted under rule "unknown" in /metrics.
        assert _report_when_cards_recorded(config, tmp_path, len(cards))["total"]["issued"] == len(cards)
        for i, card in enumerate(cards):
            rule = card["source"]["topic"]["code"]
            expected["issued"][rule] += 1
            if i % 3 == 0:
                body = feedback_for(card, "accepted")
                expected["accepted"][rule] += 1
            elif i % 3 == 1:
                reasons = card.get("overrideReasons") or [{}]
                code = reasons[0].get("code")
                body = feedback_for(card, "overridden", code)
                expected["overridden"][rule] += 1
                expected["reasons"][(rule, code or "")] += 1
            else:
                continue  # read, not answered
            assert requests.post(f"{base}{URL}/feedback", json=body, timeout=scaled(30)).json()["stored"] == 1
        report = _report_when_cards_recorded(config, tmp_path, len(cards), wait=0)
        metrics_text = requests.get(proc.metrics_url, timeout=scaled(10)).text
    finally:
        proc.terminate()
        proc.wait(timeout=scaled(30))
    assert proc.returncode == 0
    by_rule = {row["rule"]: row for row in report["rules"]}
    assert {r: row["issued"] for r, row in by_rule.items()} == dict(expected["issued"])
    assert {r: row["issued_by_service"] for r, row in by_rule.items()} == {
        r: {SERVICE: n} for r, n in expected["issued"].items()
    }
    assert {r: row["accepted"] for r, row in by_rule.items() if row["accepted"]} == dict(expected["accepted"])
    assert {r: row["overridden"] for r, row in by_rule.items() if row["overridden"]} == dict(expected["overridden"])
    report_reasons = Counter(
        {
            (r, code if code != "(no reason given)" else ""): n
            for r, row in by_rule.items()
            for code, n in row["overridden_by_reason"].items()
        }
    )
    assert report_reasons == expected["reasons"]
    # /metrics: the same totals, summed over both gunicorn workers.
    issued = total_by(samples(metrics_text, "cds_cards_issued_total"), "rule")
    assert {r: int(v) for (r,), v in issued.items()} == dict(expected["issued"])
    answers = total_by(samples(metrics_text, "cds_feedback_total"), "rule", "outcome", "reason")
    assert {k: int(v) for k, v in answers.items() if k[1] == "overridden"} == {
        (r, "overridden", code): n for (r, code), n in expected["reasons"].items()
    }
    assert {k[0]: int(v) for k, v in answers.items() if k[1] == "accepted"} == dict(expected["accepted"])
    calls = samples(metrics_text, "cds_http_requests_total")
    assert calls[(("endpoint", "service"), ("service", SERVICE), ("status", "200"))] == len(SIGNED)
    log_lines = [json.loads(line) for line in proc.log_path.read_text().splitlines() if line.startswith("{")]
    logged = {line["request_id"] for line in log_lines if line.get("event") == "request"}
    assert set(request_ids) <= logged


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """`cds-service ARGS` run as an operator would, in `cwd` with the serve environment."""
    exe = str(Path(sys.executable).with_name("cds-service"))
    return subprocess.run([exe, *args], capture_output=True, text=True, cwd=cwd, env=_serve_env(cwd))


def _json_report(config: Path, cwd: Path) -> dict:
    run = _cli(cwd, "report", "--json", "--config", str(config))
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def _report_when_cards_recorded(config: Path, cwd: Path, issued: int, wait: float = 20.0) -> dict:
    """Cards are recorded in the background: wait (briefly) until all of them are in the store."""
    deadline = time.monotonic() + scaled(wait)
    while True:
        report = _json_report(config, cwd)
        if report["total"]["issued"] == issued or time.monotonic() > deadline:
            return report
        time.sleep(0.2)


# ---- graceful stop ----


class _SlowFhir(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        time.sleep(1.5)
        body = json.dumps({"resourceType": "Bundle", "type": "searchset", "entry": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_sigterm_lets_the_call_in_flight_finish_and_records_its_cards(tmp_path):
    fhir = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowFhir)
    threading.Thread(target=fhir.serve_forever, daemon=True).start()
    fhir_base = f"http://127.0.0.1:{fhir.server_address[1]}/fhir"
    config = _write_config(
        tmp_path, fhir={"servers": [{"base_url": fhir_base, "allow_http": True, "allow_without_token": True}]}
    )
    args = ("--workers", "1", "--now", FIXTURE_NOW.isoformat(), "--config", str(config))
    proc, base = start_service(*args, env=_serve_env(tmp_path), cwd=tmp_path)
    body = hook_request()
    del body["prefetch"]["conditions"]  # fetched from the slow server: the call takes > 1.5 s
    body["fhirServer"] = fhir_base
    try:
        with ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(requests.post, f"{base}{URL}", json=body, timeout=scaled(30))
            time.sleep(0.5)
            proc.send_signal(signal.SIGTERM)
            response = in_flight.result()
        assert proc.wait(timeout=scaled(30)) == 0
    finally:
        proc.kill()
        fhir.shutdown()
    assert response.status_code == 200 and len(response.json()["cards"]) == 2
    report = _report_when_cards_recorded(config, tmp_path, 2, wait=0)
    assert report["total"]["issued"] == 2, "the worker wrote its cards before it exited"


def test_report_on_the_default_sqlite_store_and_a_clear_error_without_one(tmp_path):
    missing = _cli(tmp_path, "report")
    assert missing.returncode == 2 and "cds-service migrate" in missing.stderr and "Traceback" not in missing.stderr
    migrate = _cli(tmp_path, "migrate")
    assert migrate.returncode == 0 and f"schema empty -> {head_revision()}" in migrate.stdout
    shown = _cli(tmp_path, "report", "--since", "2026-11-01")
    assert shown.returncode == 0 and "sqlite store, since 2026-11-01T00:00:00+00:00" in shown.stdout
    assert "(no cards issued and no feedback in this period)" in shown.stdout


def test_request_id_from_uuid_is_accepted(make_app):
    request_id = str(uuid.uuid4())
    response = make_app().test_client().get("/cds-services", headers={"X-Request-Id": request_id})
    assert response.headers["X-Request-Id"] == request_id
