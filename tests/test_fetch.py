"""Getting data when prefetch is missing: the real FHIR server, partial prefetch, and failing servers."""

from __future__ import annotations

import copy
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from .conftest import SCENARIOS, SERVICE, SERVICE_FOR, free_port, load_json
from .timing import scaled

URL = f"/cds-services/{SERVICE}"
AUTH = {
    "access_token": "opaque-test-token",
    "token_type": "Bearer",
    "expires_in": 300,
    "scope": "patient/*.read",
    "subject": "mg-cds",
}


def scenario_request(name: str, hook: str = "order-sign") -> dict:
    return copy.deepcopy(load_json(SCENARIOS / name / f"request.{hook}.json"))


def rule_ids(response) -> list[str]:
    return sorted(c["source"]["topic"]["code"] for c in response.get_json()["cards"])


@pytest.mark.fhir_server
def test_partial_prefetch_is_merged_with_fetched_keys(make_app, fhir_server):
    """The EHR prefetched the patient and medications only; labs come from the FHIR server."""
    body = scenario_request("renal-contraindicated-umol")
    for key in ("renal", "weight", "magnesium", "height", "electrolytes"):
        del body["prefetch"][key]
    body.update(fhirServer=fhir_server, fhirAuthorization=AUTH)
    app = make_app({"fhir": {"servers": [{"base_url": fhir_server, "allow_http": True}]}})
    response = app.test_client().post(URL, json=body)
    assert response.status_code == 200
    assert rule_ids(response) == ["renal-contraindicated"]
    assert "256 umol/L" in json.dumps(response.get_json())


@pytest.mark.fhir_server
def test_open_server_without_token_only_when_configured(make_app, fhir_server):
    body = scenario_request("mg-high")
    del body["prefetch"]
    body["fhirServer"] = fhir_server
    strict = make_app({"fhir": {"servers": [{"base_url": fhir_server, "allow_http": True}]}})
    assert strict.test_client().post(URL, json=body).status_code == 412
    open_ = make_app(
        {"fhir": {"servers": [{"base_url": fhir_server, "allow_http": True, "allow_without_token": True}]}}
    )
    response = open_.test_client().post(URL, json=body)
    assert response.status_code == 200 and rule_ids(response) == ["mg-high"]


class MisbehavingFhir(BaseHTTPRequestHandler):
    """A FHIR server that is slow, broken, or points its paging links at another host, per path."""

    mode = "slow"

    seen: list[str] = []  # noqa: RUF012 (shared across handler instances on purpose)

    def do_GET(self):
        self.seen.append(self.path)
        if self.mode == "slow":
            time.sleep(3)
            return self._send(200, {"resourceType": "Bundle", "type": "searchset"})
        if self.mode == "error":
            return self._send(500, {"resourceType": "OperationOutcome"})
        if self.mode == "unauthorized":
            return self._send(401, {"resourceType": "OperationOutcome"})
        if self.mode == "not-found":
            return self._send(404, {"resourceType": "OperationOutcome"})
        if self.mode == "huge":
            return self._send(200, b'{"resourceType": "Bundle", "entry": [' + b'{"resource": {}},' * 50_000 + b"{}]}")
        if self.mode == "not-json":
            return self._send(200, b"<html>login</html>")
        if self.mode == "offhost-paging":
            return self._send(
                200,
                {
                    "resourceType": "Bundle",
                    "type": "searchset",
                    "entry": [],
                    "link": [{"relation": "next", "url": "http://169.254.169.254/latest/meta-data"}],
                },
            )
        return self._send(404, {})

    def _send(self, status, body):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def misbehaving_server():
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), MisbehavingFhir)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}/fhir"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("slow", "did not answer within"),
        ("error", "HTTP 500"),
        ("not-json", "not JSON"),
        ("unauthorized", "HTTP 401"),
        ("not-found", "HTTP 404"),
        ("huge", "larger than 100000 bytes"),
    ],
)
def test_failing_fhir_server_gives_cards_with_the_gap_within_the_deadline(make_app, misbehaving_server, mode, reason):
    MisbehavingFhir.mode = mode
    body = scenario_request("renal-contraindicated-cg")
    for key in ("renal", "weight"):
        del body["prefetch"][key]
    body.update(fhirServer=misbehaving_server, fhirAuthorization=AUTH)
    app = make_app(
        {
            "fhir": {
                "servers": [{"base_url": misbehaving_server, "allow_http": True}],
                "timeout_seconds": 0.5,
                "deadline_seconds": 0.8,
                "max_response_bytes": 100_000,
            }
        }
    )
    started = time.monotonic()
    response = app.test_client().post(URL, json=body)
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert elapsed < 2.0, f"answered after {elapsed:.2f} s"
    payload = response.get_json()
    assert rule_ids(response) == ["renal-unknown"]  # missing labs are missing, never normal
    renal = next(c for c in payload["cards"] if c["source"]["topic"]["code"] == "renal-unknown")
    assert reason in renal["detail"]
    # a data gap from the server is said as one: not "order a creatinine" when one may well exist
    assert renal["summary"].startswith("Renal data not retrieved")
    assert not any(s.get("label", "").startswith("Order serum creatinine") for s in renal.get("suggestions", []))
    gaps = payload["extension"]["mg-cds.data-gaps"]
    assert {g["topic"] for g in gaps} == {"renal", "weight"}


def test_paging_links_to_another_host_are_not_followed(make_app, misbehaving_server):
    """An open-ended query (no _count) pages; a next link off the allow-listed server is refused."""
    MisbehavingFhir.mode = "offhost-paging"
    MisbehavingFhir.seen = []
    body = scenario_request("fq-cipro-magnesium-ordered")
    del body["prefetch"]["medicationRequests"]
    body.update(fhirServer=misbehaving_server, fhirAuthorization=AUTH)
    app = make_app({"fhir": {"servers": [{"base_url": misbehaving_server, "allow_http": True}]}})
    payload = app.test_client().post(URL, json=body).get_json()
    assert payload["extension"]["mg-cds.data-gaps"] == [
        {"topic": "medications", "reason": "a paging link pointed outside the allow-listed server and was not followed"}
    ]
    assert all("169.254" not in path for path in MisbehavingFhir.seen)
    # the active ciprofloxacin could not be read, so no interaction card: the gap is said, not hidden
    assert "interaction-fluoroquinolone" not in rule_ids_of(payload)


def rule_ids_of(payload) -> list[str]:
    return sorted(c["source"]["topic"]["code"] for c in payload["cards"])


def test_fhir_server_down(make_app):
    down = f"http://127.0.0.1:{free_port()}/fhir"
    body = scenario_request("mg-high")
    del body["prefetch"]["magnesium"]
    body.update(fhirServer=down, fhirAuthorization=AUTH)
    app = make_app({"fhir": {"servers": [{"base_url": down, "allow_http": True}]}})
    response = app.test_client().post(URL, json=body)
    assert response.status_code == 200
    assert rule_ids(response) == []  # no Mg level: no level card, and the gap is reported
    assert response.get_json()["extension"]["mg-cds.data-gaps"][0]["reason"].startswith("the FHIR server could not")


@pytest.mark.fhir_server
def test_prefetch_error_is_refetched_from_the_server(make_app, fhir_server):
    body = scenario_request("mg-high")
    body["prefetch"]["magnesium"] = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "timeout"}],
    }
    body["fhirServer"] = fhir_server
    app = make_app({"fhir": {"servers": [{"base_url": fhir_server, "allow_http": True, "allow_without_token": True}]}})
    response = app.test_client().post(URL, json=body)
    assert response.status_code == 200
    assert rule_ids(response) == ["mg-high"] and "extension" not in response.get_json()


def test_fhir_server_must_be_allow_listed_for_the_callers_issuer(make_app):
    """A server on the global list is still refused when the EHR's issuer is limited to others."""
    from cds_service.config import settings_from_mapping
    from cds_service.fhir.gather import gather
    from cds_service.protocol.errors import ProtocolError
    from cds_service.protocol.request import parse_request
    from cds_service.security import TrustedIssuer

    body = scenario_request("mg-high")
    del body["prefetch"]["magnesium"]
    body.update(fhirServer="https://ehr-a.example.org/fhir", fhirAuthorization=AUTH)
    settings = settings_from_mapping(
        {
            "fhir": {
                "servers": [
                    {"base_url": "https://ehr-a.example.org/fhir"},
                    {"base_url": "https://ehr-b.example.org/fhir"},
                ]
            }
        }
    )
    issuer_b = TrustedIssuer(
        iss="https://ehr-b.example.org",
        jwks_url="https://ehr-b.example.org/jwks",
        fhir_servers=("https://ehr-b.example.org/fhir",),
    )
    with pytest.raises(ProtocolError) as refused:
        gather(
            parse_request(body, SERVICE),
            {"magnesium": "Observation?patient={{context.patientId}}"},
            settings.fhir,
            None,
            issuer_b,
        )
    assert refused.value.status == 412 and "issuer" in refused.value.message


@pytest.mark.fhir_server
def test_a_draft_medication_the_ehr_did_not_send_is_fetched_from_the_server(make_app, fhir_server):
    """Epic may send a draft with only medicationReference: the Medication is read from the FHIR server."""
    import requests

    body = scenario_request("referenced-medication")
    entries = body["context"]["draftOrders"]["entry"]
    medication = next(e["resource"] for e in entries if e["resource"]["resourceType"] == "Medication")
    body["context"]["draftOrders"]["entry"] = [e for e in entries if e["resource"] is not medication]
    url = f"{fhir_server}/Medication/{medication['id']}"
    assert requests.put(url, json=medication, headers={"Content-Type": "application/fhir+json"}, timeout=scaled(10)).ok
    body.update(fhirServer=fhir_server, fhirAuthorization=AUTH)
    app = make_app({"fhir": {"servers": [{"base_url": fhir_server, "allow_http": True}]}})
    response = app.test_client().post(URL, json=body)
    assert response.status_code == 200
    assert rule_ids(response) == ["renal-severe"] and "extension" not in response.get_json()
    assert "magnesium citrate" in json.dumps(response.get_json())

    without_server = scenario_request("referenced-medication")
    without_server["context"]["draftOrders"]["entry"] = body["context"]["draftOrders"]["entry"]
    unresolved = make_app().test_client().post(URL, json=without_server)
    assert unresolved.status_code == 200 and rule_ids(unresolved) == []  # nothing to recognise, nothing guessed


# ---- relevance first: an order nobody speaks about never reaches the FHIR server ----

SIGN_URL = f"/cds-services/{SERVICE_FOR['order-sign']}"


def _without_prefetch(name: str, server: str) -> dict:
    body = copy.deepcopy(load_json(SCENARIOS / name / "request.order-sign.json"))
    body.pop("prefetch", None)
    body.update(fhirServer=server, fhirAuthorization=AUTH)
    return body


def test_an_unrelated_order_costs_no_fhir_call_and_no_412(make_app, misbehaving_server):
    MisbehavingFhir.mode = "error"  # every request it gets is a 500
    MisbehavingFhir.seen = []
    app = make_app({"fhir": {"servers": [{"base_url": misbehaving_server, "allow_http": True}]}})
    client = app.test_client()
    response = client.post(
        f"/cds-services/{SERVICE_FOR['order-sign']}", json=_without_prefetch("unrelated-order", misbehaving_server)
    )
    assert response.status_code == 200 and response.get_json() == {"cards": []}
    assert MisbehavingFhir.seen == []
    # No FHIR server and no prefetch at all: still no 412 for an order nobody speaks about.
    bare = _without_prefetch("unrelated-order", misbehaving_server)
    del bare["fhirServer"], bare["fhirAuthorization"]
    assert client.post(f"/cds-services/{SERVICE_FOR['order-sign']}", json=bare).status_code == 200
    # The same request for a magnesium order does go to the server (and says what it could not get).
    magnesium = client.post(
        f"/cds-services/{SERVICE_FOR['order-sign']}",
        json=_without_prefetch("renal-contraindicated-cg", misbehaving_server),
    )
    assert magnesium.status_code == 200 and MisbehavingFhir.seen
    assert magnesium.get_json()["extension"]["mg-cds.data-gaps"]
    del bare["context"]["draftOrders"]["entry"][0]["resource"]["medicationCodeableConcept"]
    bare["context"]["draftOrders"]["entry"][0]["resource"]["medicationReference"] = {"reference": "Medication/m1"}
    assert client.post(f"/cds-services/{SERVICE_FOR['order-sign']}", json=bare).status_code == 412, (
        "an order only the EHR can name takes the full path"
    )
