"""Verify the Bearer JWT a CDS Client (the EHR) signs for every call, per CDS Hooks 2.0 and its best
practices: trusted `iss`; asymmetric `alg` only (never `none` or HS*); signature against the
issuer's JWKS (its configured URL, inline keys, or the token's `jku` only when allow-listed), cached
and refetched once on an unknown `kid`; `aud` = the exact endpoint URL; `exp` in the future; `iat`
not in the future; lifetime <= 1 h; `jti` not replayed; `tenant` when configured. PyJWT and
`cryptography` do the cryptography. Reasons go to metrics and logs, never to the caller.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
import requests

from .replay import MemoryReplayCache, ReplayCache

ASYMMETRIC = frozenset({"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
DEFAULT_ALGORITHMS = ("ES384", "RS384")


class JwtRejected(Exception):
    """The token is not acceptable; `reason` is for logs and metrics only."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TrustedIssuer:
    iss: str
    jwks_url: str | None = None
    jwks: Mapping[str, Any] | None = None
    jku_allowed: tuple[str, ...] = ()
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    tenants: tuple[str, ...] = ()
    fhir_servers: tuple[str, ...] = ()  # empty: any server on the global allow-list


class JwksCache:
    """Public keys per JWKS URL; an unknown kid triggers at most one refetch per URL every 10 s."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched_at: dict[str, float] = {}
        self._lock = threading.Lock()

    def key(self, url: str, kid: str) -> Any | None:
        keys = self._keys.get(url)
        if keys is None or (kid not in keys and time.monotonic() - self._fetched_at.get(url, 0) > 10):
            keys = self._fetch(url)
        return keys.get(kid)

    def _fetch(self, url: str) -> dict[str, Any]:
        try:
            response = requests.get(url, timeout=self.timeout, allow_redirects=False)
            response.raise_for_status()
            keys = keys_by_kid(response.json())
        except (requests.RequestException, ValueError, jwt.PyJWTError):
            keys = self._keys.get(url, {})
        with self._lock:
            self._keys[url] = keys
            self._fetched_at[url] = time.monotonic()
        return keys


def keys_by_kid(jwks: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for jwk in jwt.PyJWKSet.from_dict(dict(jwks)).keys:
        if jwk.key_id:
            out[jwk.key_id] = jwk.key
    return out


class TokenVerifier:
    def __init__(
        self,
        issuers: tuple[TrustedIssuer, ...],
        timeout: float = 2.0,
        max_lifetime: float = 3600,
        skew: float = 60,
        replay: ReplayCache | None = None,
    ) -> None:
        self.issuers = {i.iss: i for i in issuers}
        self.inline = {i.iss: keys_by_kid(i.jwks) for i in issuers if i.jwks}
        self.cache = JwksCache(timeout)
        self.replay = replay or MemoryReplayCache()
        self.max_lifetime = max_lifetime
        self.skew = skew

    def verify(self, authorization: str | None, audience: str) -> tuple[TrustedIssuer, dict[str, Any]]:
        if not authorization or not authorization.startswith("Bearer ") or len(authorization) > 16384:
            raise JwtRejected("missing bearer token")
        token = authorization[len("Bearer ") :].strip()
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise JwtRejected("malformed token") from exc
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ASYMMETRIC:
            raise JwtRejected(f"algorithm not allowed: {alg}")
        if header.get("typ") not in (None, "JWT"):
            raise JwtRejected("typ is not JWT")
        issuer = self.issuers.get(unverified.get("iss")) if isinstance(unverified.get("iss"), str) else None
        if issuer is None:
            raise JwtRejected("untrusted issuer")
        if alg not in issuer.algorithms:
            raise JwtRejected(f"algorithm not allowed for this issuer: {alg}")
        if not isinstance(kid, str) or not kid:
            raise JwtRejected("missing kid")
        key = self._key(issuer, header, kid)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=audience,
                issuer=issuer.iss,
                leeway=self.skew,
                options={"require": ["iss", "aud", "exp", "iat", "jti"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise JwtRejected("expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise JwtRejected("wrong audience") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise JwtRejected(f"missing claim {exc.claim}") from exc
        except jwt.PyJWTError as exc:
            raise JwtRejected(f"invalid token ({type(exc).__name__})") from exc
        now = time.time()
        if claims["iat"] > now + self.skew:
            raise JwtRejected("issued in the future")
        if claims["exp"] - claims["iat"] > self.max_lifetime:
            raise JwtRejected("lifetime longer than allowed")
        if issuer.tenants and claims.get("tenant") not in issuer.tenants:
            raise JwtRejected("untrusted tenant")
        if not isinstance(claims["jti"], str) or not self.replay.first_use(
            f"{issuer.iss}|{claims['jti']}", claims["exp"]
        ):
            raise JwtRejected("replayed jti")
        return issuer, claims

    def _key(self, issuer: TrustedIssuer, header: Mapping[str, Any], kid: str) -> Any:
        jku = header.get("jku")
        if jku is not None:
            if jku not in issuer.jku_allowed:
                raise JwtRejected("jku not allow-listed for this issuer")
            key = self.cache.key(jku, kid)
        elif issuer.iss in self.inline:
            key = self.inline[issuer.iss].get(kid)
        elif issuer.jwks_url:
            key = self.cache.key(issuer.jwks_url, kid)
        else:
            key = None
        if key is None:
            raise JwtRejected("unknown kid")
        return key
