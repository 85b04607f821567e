"""The defects an outside token-attack suite found, each checked against the running gunicorn server
with its default worker count: none may give a 500, let a replay in, or tell a caller anything."""

from __future__ import annotations

import json
import threading
import time
from http.server import ThreadingHTTPServer

import jwt
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from .conftest import FIXTURE_NOW, free_port, start_service
from .test_jwt import BODY, EC_KEY, HOOK, ISS, RSA_KEY, JwksHandler, call, token
from .timing import scaled

DEAD_ISS = "https://ehr-with-unreachable-keys.example.org"


def write_config(folder, port: int, issuers: list[dict]) -> str:
    config = folder / "site.yaml"
    config.write_text(
        json.dumps(
            {
                "data_dir": str(folder / "data"),
                "public_base_url": f"http://127.0.0.1:{port}",
                "security": {"trusted_issuers": issuers},
            }
        )
    )
    return str(config)


@pytest.fixture(scope="module")
def jwks_base():
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), JwksHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def signed(tmp_path_factory, jwks_base):
    """`serve` as a site would run it: default workers (2), no database_url, two issuers, one of whose
    JWKS URL answers nothing."""
    folder = tmp_path_factory.mktemp("trust")
    port = free_port()
    issuers = [
        {"iss": ISS, "jwks_url": f"{jwks_base}/jwks.json"},
        {"iss": DEAD_ISS, "jwks_url": f"http://127.0.0.1:{free_port()}/jwks.json"},
    ]
    config = write_config(folder, port, issuers)
    proc, base = start_service("--config", config, "--now", FIXTURE_NOW.isoformat(), port=port)
    yield base, proc
    proc.terminate()
    proc.wait(timeout=scaled(20))


def rejections(metrics_url: str) -> dict[str, float]:
    text = requests.get(metrics_url, timeout=scaled(10)).text
    return {
        sample.labels["reason"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "cds_jwt_rejections"
        for sample in family.samples
        if sample.name == "cds_jwt_rejections_total"
    }


def log_lines(proc) -> list[str]:
    return proc.log_path.read_text().splitlines()


# 1. A token whose alg names the other key type: PyJWT raises TypeError, which must be a 401.
@pytest.mark.parametrize(
    ("key", "alg", "kid"), [(RSA_KEY, "RS384", "ec-1"), (EC_KEY, "ES384", "rsa-1")], ids=["RS384+EC", "ES384+RSA"]
)
def test_an_alg_that_does_not_fit_the_named_key_is_a_401_not_a_500(signed, key, alg, kid):
    base, _ = signed
    response = call(base, token(base, HOOK, key=key, alg=alg, kid=kid))
    assert response.status_code == 401
    assert response.json()["issue"][0]["diagnostics"] == "authentication required"


# 2. exp / iat as numeric strings: PyJWT accepts them; the service's own checks must not crash on them.
@pytest.mark.parametrize("claim", ["exp", "iat"])
def test_a_numeric_string_exp_or_iat_is_a_401_not_a_500(signed, claim):
    base, _ = signed
    now = int(time.time())
    value = {"exp": str(now + 300), "iat": str(now)}[claim]
    assert call(base, token(base, HOOK, **{claim: value})).status_code == 401


# 3. Replays across the default two workers, and after a restart.
def test_a_replayed_token_is_refused_by_every_worker_and_after_a_restart(tmp_path, jwks_base):
    port = free_port()
    config = write_config(tmp_path, port, [{"iss": ISS, "jwks_url": f"{jwks_base}/jwks.json"}])
    proc, base = start_service("--config", config, port=port)
    try:
        bearer = token(base, HOOK, exp=int(time.time()) + 600)
        statuses = [call(base, bearer).status_code for _ in range(24)]
        assert statuses.count(200) == 1 and statuses.count(401) == 23, statuses
        assert "JWT replay cache shared" in proc.log_path.read_text()
    finally:
        proc.terminate()
        assert proc.wait(timeout=scaled(30)) == 0
    restarted, _ = start_service("--config", config, port=port)
    try:
        assert call(base, bearer).status_code == 401, "a replay after a restart is refused"
        assert call(base, token(base, HOOK)).status_code == 200
    finally:
        restarted.terminate()
        restarted.wait(timeout=scaled(30))


# 4. The auth scheme is case-insensitive.
@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer"])
def test_the_bearer_scheme_is_case_insensitive(signed, scheme):
    base, _ = signed
    response = requests.post(base + HOOK, json=BODY, headers={"Authorization": f"{scheme} {token(base, HOOK)}"})
    assert response.status_code == 200


# 5. A 401 carries the Bearer challenge, and no reason.
def test_every_401_says_www_authenticate_bearer_and_no_reason(signed):
    base, _ = signed
    for bearer in (None, "not-a-jwt", token(base, HOOK, kid="no-such-kid")):
        response = call(base, bearer)
        assert response.status_code == 401
        challenge = response.headers["WWW-Authenticate"]
        assert challenge.startswith("Bearer") and "error" not in challenge and "kid" not in challenge
        assert response.json()["resourceType"] == "OperationOutcome"


# 6. /metrics is not on the EHR's port; the metrics port has the rejection reasons.
def test_metrics_are_on_their_own_port_only(signed):
    base, proc = signed
    assert requests.get(f"{base}/metrics", timeout=scaled(5)).status_code in (401, 404)
    before = rejections(proc.metrics_url)
    call(base, "not-a-jwt")
    after = rejections(proc.metrics_url)
    assert after.get("malformed token", 0) == before.get("malformed token", 0) + 1


# 7. A JWKS that cannot be fetched is its own reason, logged with the host and error class.
def test_an_unreachable_jwks_is_reported_as_such_not_as_an_unknown_kid(signed):
    base, proc = signed
    before = rejections(proc.metrics_url)
    assert call(base, token(base, HOOK, iss=DEAD_ISS)).status_code == 401
    after = rejections(proc.metrics_url)
    assert after.get("jwks unavailable", 0) == before.get("jwks unavailable", 0) + 1
    assert after.get("unknown kid", 0) == before.get("unknown kid", 0)
    failures = [json.loads(line) for line in log_lines(proc) if "JWKS fetch failed" in line]
    assert failures and "127.0.0.1" in failures[-1]["message"] and "ConnectionError" in failures[-1]["message"]


# 8. Nothing a caller sends is quoted at length in the log.
def test_an_attacker_chosen_alg_is_not_logged_verbatim(signed):
    base, proc = signed
    long_alg = "A" * 3000
    header = jwt.utils.base64url_encode(json.dumps({"alg": long_alg, "kid": "ec-1"}).encode()).decode()
    body = jwt.utils.base64url_encode(json.dumps({"iss": ISS}).encode()).decode()
    assert call(base, f"{header}.{body}.c2ln").status_code == 401
    path = HOOK + "/" + "B" * 3000
    requests.post(base + path, json=BODY, timeout=scaled(10))
    time.sleep(0.3)
    lines = log_lines(proc)
    assert not any("A" * 60 in line or "B" * 100 in line for line in lines)
    assert any("algorithm not allowed" in line for line in lines)


# 9. Unsigned development mode behind a proxy: proxy headers mean the caller is not really local.
@pytest.fixture(scope="module")
def unsigned_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("unsigned")
    config = folder / "site.yaml"
    config.write_text(json.dumps({"data_dir": str(folder / "data")}))
    proc, base = start_service("--config", str(config), "--now", FIXTURE_NOW.isoformat())
    yield base, proc
    proc.terminate()
    proc.wait(timeout=scaled(20))


@pytest.mark.parametrize("header", ["Forwarded", "X-Forwarded-For", "X-Real-IP"])
def test_unsigned_mode_refuses_calls_that_came_through_a_proxy(unsigned_server, header):
    base, proc = unsigned_server
    assert requests.post(base + HOOK, json=BODY, timeout=scaled(10)).status_code == 200
    proxied = requests.post(base + HOOK, json=BODY, headers={header: "for=203.0.113.7"}, timeout=scaled(10))
    assert proxied.status_code == 401 and proxied.headers["WWW-Authenticate"].startswith("Bearer")
    start = proc.log_path.read_text()
    assert "reverse proxy" in start and "trusted_issuers" in start
