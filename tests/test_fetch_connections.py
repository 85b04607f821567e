"""Connections to an EHR's FHIR server are reused across hook calls, and the shared session carries
nothing from one call into the next: not the token, not a cookie, not a credential from ~/.netrc."""

from __future__ import annotations

import copy
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from .conftest import SCENARIOS, SERVICE, free_port, load_json
from .servers import stand_in

URL = f"/cds-services/{SERVICE}"


class RecordingFhir(BaseHTTPRequestHandler):
    """Answers every search with an empty Bundle over HTTP/1.1 keep-alive; records each connection
    and each request's headers, and asks the client to keep a cookie."""

    protocol_version = "HTTP/1.1"
    connections = 0
    requests: list[dict[str, str]] = []  # noqa: RUF012 (shared across handler instances on purpose)
    lock = threading.Lock()

    def setup(self):
        super().setup()
        with self.lock:
            type(self).connections += 1

    def do_GET(self):
        with self.lock:
            self.requests.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
        data = json.dumps({"resourceType": "Bundle", "type": "searchset", "entry": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Set-Cookie", "session=patient-a; Path=/")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def recording_server():
    RecordingFhir.connections = 0
    RecordingFhir.requests = []
    with stand_in(RecordingFhir) as base:
        yield base


def _no_prefetch(server: str, token: str | None) -> dict:
    body = copy.deepcopy(load_json(SCENARIOS / "mg-high" / "request.order-sign.json"))
    del body["prefetch"]
    body["fhirServer"] = server
    if token:
        body["fhirAuthorization"] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "mg-cds",
        }
    return body


@pytest.fixture
def open_app(make_app, recording_server):
    config = {"base_url": recording_server, "allow_http": True, "allow_without_token": True}
    return make_app({"fhir": {"servers": [config]}})


def test_calls_reuse_the_connections_to_the_fhir_server(open_app, recording_server):
    client = open_app.test_client()
    assert client.post(URL, json=_no_prefetch(recording_server, "token-1")).status_code == 200
    per_call = len(RecordingFhir.requests)  # the queries of one call, sent in parallel
    for _ in range(4):
        assert client.post(URL, json=_no_prefetch(recording_server, "token-1")).status_code == 200
    assert per_call >= 5 and len(RecordingFhir.requests) == 5 * per_call
    # At most one connection per query in flight at once, over all five calls (a session per call
    # opened about one per query per call: 5 x as many).
    assert RecordingFhir.connections <= per_call


def test_the_token_goes_with_its_own_call_only(open_app, recording_server):
    client = open_app.test_client()
    client.post(URL, json=_no_prefetch(recording_server, "token-of-call-1"))
    first = len(RecordingFhir.requests)
    client.post(URL, json=_no_prefetch(recording_server, None))
    client.post(URL, json=_no_prefetch(recording_server, "token-of-call-3"))
    one, two = RecordingFhir.requests[:first], RecordingFhir.requests[first : 2 * first]
    three = RecordingFhir.requests[2 * first :]
    assert {r.get("authorization") for r in one} == {"Bearer token-of-call-1"}
    assert {r.get("authorization") for r in two} == {None}  # the call without a token sends none
    assert {r.get("authorization") for r in three} == {"Bearer token-of-call-3"}


def test_no_cookie_a_server_sets_is_sent_back(open_app, recording_server):
    """A cookie must not follow one patient's call into another's (nor from one query to the next)."""
    client = open_app.test_client()
    for _ in range(2):
        assert client.post(URL, json=_no_prefetch(recording_server, None)).status_code == 200
    assert len(RecordingFhir.requests) > 1
    assert all("cookie" not in r for r in RecordingFhir.requests)


def test_no_netrc_credential_reaches_the_server(open_app, recording_server, tmp_path, monkeypatch):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert open_app.test_client().post(URL, json=_no_prefetch(recording_server, None)).status_code == 200
    assert RecordingFhir.requests
    assert all("authorization" not in r for r in RecordingFhir.requests)


def test_a_proxy_set_in_the_environment_is_used(make_app, recording_server, monkeypatch):
    """Hospitals reach outside servers through an egress proxy (HTTP_PROXY / HTTPS_PROXY): it is read
    once, when the first call to a server opens its session."""
    proxy = recording_server.rsplit("/fhir", 1)[0]  # the recording server answers proxied requests too
    monkeypatch.setenv("HTTP_PROXY", proxy)
    for name in ("NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    far_away = "http://fhir.example.org/r4"
    app = make_app({"fhir": {"servers": [{"base_url": far_away, "allow_http": True, "allow_without_token": True}]}})
    assert app.test_client().post(URL, json=_no_prefetch(far_away, None)).status_code == 200
    assert RecordingFhir.requests
    assert all(r["path"].startswith(far_away + "/") for r in RecordingFhir.requests)  # absolute URIs: proxied


def test_a_forked_worker_opens_its_own_session():
    from cds_service.fhir.client import FhirFetcher

    fetcher = FhirFetcher(1, 1, 1, 1000)
    first = fetcher._session("http://127.0.0.1:1/fhir")
    assert fetcher._session("http://127.0.0.1:1/fhir") is first
    fetcher._pid = -1  # as in a child after fork: the parent's pid
    assert fetcher._session("http://127.0.0.1:1/fhir") is not first


def test_the_ca_bundle_set_in_the_environment_verifies_the_server(monkeypatch, tmp_path):
    """A hospital's own CA (REQUESTS_CA_BUNDLE) is used for its FHIR server's TLS, as before."""
    from cds_service.fhir.client import FhirFetcher

    bundle = tmp_path / "hospital-ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    assert FhirFetcher(1, 1, 1, 1000)._session("https://fhir.hospital.example.org/r4").verify == str(bundle)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    assert FhirFetcher(1, 1, 1, 1000)._session("https://fhir.hospital.example.org/r4").verify is True


class ClosingOnReuse(BaseHTTPRequestHandler):
    """Answers the first request of a connection; a second one on the same connection is dropped
    unanswered, as a server does when its idle timeout fires just as the client reuses the connection."""

    protocol_version = "HTTP/1.1"
    dropped = 0

    def do_GET(self):
        self.served = getattr(self, "served", 0) + 1
        if self.served > 1:
            type(self).dropped += 1
            self.close_connection = True
            return
        data = json.dumps({"resourceType": "Bundle", "type": "searchset", "entry": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_a_connection_the_server_closed_on_reuse_is_retried_once_on_a_new_one():
    from cds_service.fhir.client import FhirFetcher

    ClosingOnReuse.dropped = 0
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), ClosingOnReuse)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/fhir"
    try:
        fetcher = FhirFetcher(2, 3, 1, 100_000)
        queries = {"magnesium": "Observation?code=19123-9"}
        for _ in range(3):  # the second and third calls reuse the connection the server then drops
            results = fetcher.fetch_all(base, queries, None)
            assert results["magnesium"].error is None
        assert ClosingOnReuse.dropped >= 1
    finally:
        server.shutdown()
        server.server_close()
