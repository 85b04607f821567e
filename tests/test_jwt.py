"""EHR JWT verification against the running server (gunicorn): what is accepted and what gets a 401."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .conftest import SCENARIOS, SERVICE, free_port, load_json, start_service
from .timing import scaled

ISS = "https://ehr.example.org"
EC_KEY = ec.generate_private_key(ec.SECP384R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ATTACKER = ec.generate_private_key(ec.SECP384R1())
ROTATED = ec.generate_private_key(ec.SECP384R1())


def jwk(private_key, kid: str, alg: str) -> dict:
    algorithm = jwt.algorithms.ECAlgorithm if alg.startswith("ES") else jwt.algorithms.RSAAlgorithm
    return {**algorithm.to_jwk(private_key.public_key(), as_dict=True), "kid": kid, "alg": alg, "use": "sig"}


JWKS = {
    "/jwks.json": {"keys": [jwk(EC_KEY, "ec-1", "ES384"), jwk(RSA_KEY, "rsa-1", "RS384")]},
    "/rotated.json": {"keys": [jwk(ROTATED, "rotated-1", "ES384")]},
    "/unlisted.json": {"keys": [jwk(ATTACKER, "evil-1", "ES384")]},
}


class JwksHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps(JWKS.get(self.path, {"keys": []})).encode()
        self.send_response(200 if self.path in JWKS else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("jwt")
    jwks_port, port = free_port(), free_port()
    jwks_server = ThreadingHTTPServer(("127.0.0.1", jwks_port), JwksHandler)
    threading.Thread(target=jwks_server.serve_forever, daemon=True).start()
    jwks_base = f"http://127.0.0.1:{jwks_port}"
    config = folder / "site.yaml"
    config.write_text(
        json.dumps(
            {
                "data_dir": str(folder / "data"),
                "public_base_url": f"http://127.0.0.1:{port}",
                "security": {
                    "trusted_issuers": [
                        {"iss": ISS, "jwks_url": f"{jwks_base}/jwks.json", "jku_allowed": [f"{jwks_base}/rotated.json"]}
                    ]
                },
            }
        )
    )
    proc, base = start_service("--workers", "1", "--config", str(config), "--now", "2026-11-15T12:00:00Z", port=port)
    yield base, jwks_base
    proc.terminate()
    proc.wait(timeout=scaled(20))
    jwks_server.shutdown()


def token(base: str, path: str, *, key=EC_KEY, alg="ES384", kid="ec-1", drop=(), headers=None, **claims) -> str:
    now = int(time.time())
    payload = {"iss": ISS, "aud": base + path, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4()), **claims}
    for name in drop:
        payload.pop(name)
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid, "typ": "JWT", **(headers or {})})


HOOK = f"/cds-services/{SERVICE}"
BODY = load_json(SCENARIOS / "mg-high" / "request.order-sign.json")


def call(base: str, bearer: str | None, path: str = HOOK):
    headers = {"Authorization": f"Bearer {bearer}"} if bearer is not None else {}
    if path == "/cds-services":
        return requests.get(base + path, headers=headers, timeout=scaled(10))
    return requests.post(base + path, json=BODY, headers=headers, timeout=scaled(10))


def test_valid_es384_and_rs384_are_accepted(server):
    base, _ = server
    assert call(base, token(base, "/cds-services"), "/cds-services").status_code == 200
    response = call(base, token(base, HOOK))
    assert response.status_code == 200
    assert "mg-high" in {c["source"]["topic"]["code"] for c in response.json()["cards"]}
    assert call(base, token(base, HOOK, key=RSA_KEY, alg="RS384", kid="rsa-1")).status_code == 200


def test_extra_claims_such_as_sub_and_nbf_are_tolerated(server):
    base, _ = server
    assert call(base, token(base, HOOK, sub="user-1", nbf=int(time.time()) - 300)).status_code == 200


def test_allow_listed_jku_with_a_rotated_key(server):
    base, jwks_base = server
    bearer = token(base, HOOK, key=ROTATED, kid="rotated-1", headers={"jku": f"{jwks_base}/rotated.json"})
    assert call(base, bearer).status_code == 200


def hs256_with_public_key(base: str) -> str:
    """The classic confusion attack: HMAC keyed with the issuer's public key."""
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    secret = EC_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    now = int(time.time())
    header = b64(json.dumps({"alg": "HS256", "kid": "ec-1", "typ": "JWT"}).encode())
    payload = b64(
        json.dumps({"iss": ISS, "aud": base + HOOK, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())}).encode()
    )
    signature = b64(hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    return f"{header}.{payload}.{signature}"


def unsigned(base: str) -> str:
    now = int(time.time())
    return jwt.encode(
        {"iss": ISS, "aud": base + HOOK, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())},
        None,
        algorithm="none",
        headers={"kid": "ec-1"},
    )


REJECTED = {
    "no token": lambda b, j: None,
    "not a JWT": lambda b, j: "not-a-jwt",
    "expired": lambda b, j: token(b, HOOK, iat=int(time.time()) - 900, exp=int(time.time()) - 600),
    "iat in the future": lambda b, j: token(b, HOOK, iat=int(time.time()) + 600, exp=int(time.time()) + 900),
    "lifetime over an hour": lambda b, j: token(b, HOOK, exp=int(time.time()) + 7200),
    "wrong aud": lambda b, j: token(b, HOOK, aud=b + "/cds-services/other"),
    "unknown iss": lambda b, j: token(b, HOOK, iss="https://evil.example"),
    "bad signature": lambda b, j: token(b, HOOK, key=ATTACKER),
    "alg none": lambda b, j: unsigned(b),
    "HS256 with the public key": lambda b, j: hs256_with_public_key(b),
    "unlisted jku": lambda b, j: token(b, HOOK, key=ATTACKER, kid="evil-1", headers={"jku": f"{j}/unlisted.json"}),
    "unknown kid": lambda b, j: token(b, HOOK, kid="no-such-kid"),
    "missing iss": lambda b, j: token(b, HOOK, drop=("iss",)),
    "missing aud": lambda b, j: token(b, HOOK, drop=("aud",)),
    "missing exp": lambda b, j: token(b, HOOK, drop=("exp",)),
    "missing iat": lambda b, j: token(b, HOOK, drop=("iat",)),
    "missing jti": lambda b, j: token(b, HOOK, drop=("jti",)),
}


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_rejected_tokens_get_a_bare_401(server, case):
    base, jwks_base = server
    response = call(base, REJECTED[case](base, jwks_base))
    assert response.status_code == 401, case
    assert response.json()["issue"][0]["diagnostics"] == "authentication required"  # no detail for the caller


def test_replayed_jti_is_rejected(server):
    base, _ = server
    bearer = token(base, HOOK)
    assert call(base, bearer).status_code == 200
    assert call(base, bearer).status_code == 401


def test_feedback_needs_a_token_too_and_health_does_not(server):
    base, _ = server
    feedback = {
        "feedback": [{"card": str(uuid.uuid4()), "outcome": "overridden", "outcomeTimestamp": "2026-11-15T12:00:00Z"}]
    }
    path = f"{HOOK}/feedback"
    assert requests.post(base + path, json=feedback, timeout=scaled(10)).status_code == 401
    signed = requests.post(
        base + path, json=feedback, timeout=10, headers={"Authorization": f"Bearer {token(base, path)}"}
    )
    assert signed.status_code == 200
    assert requests.get(f"{base}/healthz", timeout=scaled(5)).status_code == 200


def test_serve_refuses_a_public_bind_without_trusted_issuers(tmp_path):
    exe = Path(sys.executable).with_name("cds-service")
    result = subprocess.run(
        [str(exe), "serve", "--host", "0.0.0.0", "--port", str(free_port())],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "refusing to serve on 0.0.0.0 without trusted issuers" in result.stderr


def test_unsigned_calls_only_from_loopback(make_app):
    client = make_app().test_client()
    assert client.get("/cds-services", environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 200
    assert client.get("/cds-services", environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 401


def test_replay_is_caught_across_workers_sharing_the_database(make_app, tmp_path):
    """Two app instances (two workers, or two replicas) with one configured database: a jti used on one
    is refused on the other."""
    config = {
        "store_url": f"sqlite:///{tmp_path / 'shared.sqlite3'}",
        "public_base_url": "https://cds.example.org",
        "security": {"trusted_issuers": [{"iss": ISS, "jwks": JWKS["/jwks.json"]}]},
    }
    first, second = make_app(config).test_client(), make_app(config).test_client()
    bearer = token("https://cds.example.org", "/cds-services")
    assert first.get("/cds-services", headers={"Authorization": f"Bearer {bearer}"}).status_code == 200
    assert second.get("/cds-services", headers={"Authorization": f"Bearer {bearer}"}).status_code == 401
    other = token("https://cds.example.org", "/cds-services")
    assert second.get("/cds-services", headers={"Authorization": f"Bearer {other}"}).status_code == 200


def test_sandbox_key_only_in_explicit_development_mode(make_app, caplog):
    from cds_service.config import SANDBOX_ISSUER, settings_from_mapping

    assert SANDBOX_ISSUER not in settings_from_mapping({}).security.trusted_issuers
    assert (
        SANDBOX_ISSUER
        in settings_from_mapping({"security": {"development_trust_sandbox": True}}).security.trusted_issuers
    )
    with caplog.at_level("WARNING"):
        make_app({"security": {"development_trust_sandbox": True}})
    assert "DEVELOPMENT MODE" in caplog.text


def test_jwks_is_refetched_once_on_an_unknown_kid(server):
    """Key rotation: a kid the cache has not seen makes it fetch the JWKS again (at most every 10 s per URL)."""
    from cds_service.security.jwt_verifier import JwksCache

    _, jwks_base = server
    url = f"{jwks_base}/jwks.json"
    cache = JwksCache(timeout=2)
    assert cache.key(url, "ec-1") is not None
    new_key = ec.generate_private_key(ec.SECP384R1())
    JWKS["/jwks.json"]["keys"].append(jwk(new_key, "ec-2", "ES384"))
    try:
        assert cache.key(url, "ec-2") is None  # just fetched: no second fetch within 10 s (no kid-spray amplification)
        cache._fetched_at[url] -= 11
        assert cache.key(url, "ec-2") is not None  # rotated key found by the refetch
    finally:
        JWKS["/jwks.json"]["keys"].pop()
