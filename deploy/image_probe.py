"""What deploy/check-image.sh asks of a running container, from the host: a signing key and the
config that trusts it (`keys OUT_DIR PORT`), then, once it runs, /healthz, /readyz, discovery and one
order-sign hook call with a real ES384-signed JWT, and a rule page (`probe BASE_URL OUT_DIR`).
Exit 0 when every answer is right; otherwise the first wrong one is printed."""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import ec

ISS = "https://image-check.invalid"
ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "fixtures" / "scenarios" / "fq-cipro-magnesium-ordered" / "request.order-sign.json"
HOOK = "/cds-services/magnesium-order-sign"


def keys(out: Path, port: int) -> None:
    """A fresh EC key (kept in `out`, never in the image) and the config that trusts its public half."""
    key = ec.generate_private_key(ec.SECP384R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    (out / "jwks.json").write_text(json.dumps({"keys": [{**public, "kid": "check-1", "alg": "ES384", "use": "sig"}]}))
    (out / "key.json").write_text(jwt.algorithms.ECAlgorithm.to_jwk(key))
    config = {
        "log_level": "INFO",
        "public_base_url": f"http://127.0.0.1:{port}",
        "security": {"trusted_issuers": [{"iss": ISS, "jwks_file": "/etc/cds-service/keys/jwks.json"}]},
        "metrics": {"host": "0.0.0.0", "port": 9464},
    }
    (out / "config.yaml").write_text(json.dumps(config))  # YAML is a superset of JSON


def _bearer(out: Path, base: str, path: str) -> dict[str, str]:
    key = jwt.algorithms.ECAlgorithm.from_jwk((out / "key.json").read_text())
    now = int(time.time())
    claims = {"iss": ISS, "aud": base + path, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())}
    token = jwt.encode(claims, key, algorithm="ES384", headers={"kid": "check-1", "typ": "JWT"})
    return {"Authorization": f"Bearer {token}"}


def probe(base: str, out: Path) -> str | None:
    """The first thing that is wrong, or None."""
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                break
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            return "/healthz did not answer 200 within 60 s"
        time.sleep(0.5)
    ready = requests.get(f"{base}/readyz", timeout=5)
    if ready.status_code != 200 or ready.json().get("status") != "ok":
        return f"/readyz: {ready.status_code} {ready.text[:200]}"
    if requests.get(f"{base}/cds-services", timeout=5).status_code != 401:
        return "discovery without a token was not refused"
    found = requests.get(f"{base}/cds-services", headers=_bearer(out, base, "/cds-services"), timeout=5)
    ids = [s.get("id") for s in found.json().get("services", [])] if found.status_code == 200 else []
    if "magnesium-order-sign" not in ids:
        return f"discovery: {found.status_code} {found.text[:200]}"
    body = json.loads(SCENARIO.read_text())
    called = requests.post(f"{base}{HOOK}", json=body, headers=_bearer(out, base, HOOK), timeout=30)
    rules = [c["source"]["topic"]["code"] for c in called.json().get("cards", [])] if called.ok else []
    if "interaction-fluoroquinolone" not in rules:
        return f"hook call: {called.status_code} {called.text[:300]}"
    page = requests.get(f"{base}/rules/interaction-fluoroquinolone", timeout=5)
    if page.status_code != 200 or "ciprofloxacin" not in page.text:
        return f"rule page: {page.status_code}"
    print(f"image-probe: healthz, readyz, discovery ({len(ids)} services), order-sign ({len(rules)} cards), rule page")
    return None


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "keys":
        keys(Path(sys.argv[2]), int(sys.argv[3]))
    elif len(sys.argv) == 4 and sys.argv[1] == "probe":
        problem = probe(sys.argv[2], Path(sys.argv[3]))
        if problem:
            print(f"image-probe: {problem}", file=sys.stderr)
            sys.exit(1)
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
