"""Verify the Bearer JWT a CDS Client (the EHR) signs for every call, per CDS Hooks 2.0 and its best
practices: trusted `iss`; asymmetric `alg` only (never `none` or HS*); signature against the
issuer's JWKS (its configured URL, inline keys, or the token's `jku` only when allow-listed), cached
and refetched once on an unknown `kid`; `aud` = the exact endpoint URL; `exp` in the future; `iat`
not in the future; lifetime <= 1 h; `jti` not replayed; `tenant` when configured. PyJWT and
`cryptography` do the cryptography. Reasons go to metrics and logs, never to the caller.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ..logs import clip
from .jwt_replay import JwtReplayCache, ProcessJwtReplayCache

log = logging.getLogger(__name__)
ASYMMETRIC = frozenset({"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
DEFAULT_ALGORITHMS = ("ES384", "RS384")
NUMERIC_CLAIMS = ("exp", "iat", "nbf")


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
    """Public keys per JWKS URL; an unknown kid triggers at most one refetch per URL every 10 s.

    A JWKS that cannot be fetched is its own failure ("jwks unavailable", logged with the host and
    the error class), not an unknown kid: an operator must be able to tell an outage from an attack.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched_at: dict[str, float] = {}
        self._failed: dict[str, bool] = {}
        self._lock = threading.Lock()

    def key(self, url: str, kid: str) -> Any | None:
        keys = self._keys.get(url)
        if keys is None or (kid not in keys and time.monotonic() - self._fetched_at.get(url, 0) > 10):
            keys = self._fetch(url)
        key = keys.get(kid)
        if key is None and self._failed.get(url):
            raise JwtRejected("jwks unavailable")
        return key

    def _fetch(self, url: str) -> dict[str, Any]:
        failed = False
        try:
            response = requests.get(url, timeout=self.timeout, allow_redirects=False)
            response.raise_for_status()
            keys = keys_by_kid(response.json())
        except (requests.RequestException, ValueError, TypeError, KeyError, jwt.PyJWTError) as exc:
            failed = True
            keys = self._keys.get(url, {})
            log.warning("JWKS fetch failed: host %s: %s", clip(urlsplit(url).netloc), type(exc).__name__)
        with self._lock:
            self._keys[url] = keys
            self._fetched_at[url] = time.monotonic()
            self._failed[url] = failed
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
        replay: JwtReplayCache | None = None,
    ) -> None:
        self.issuers = {i.iss: i for i in issuers}
        self.inline = {i.iss: keys_by_kid(i.jwks) for i in issuers if i.jwks}
        self.cache = JwksCache(timeout)
        self.replay = replay or ProcessJwtReplayCache()
        self.max_lifetime = max_lifetime
        self.skew = skew

    def verify(self, authorization: str | None, audience: str) -> tuple[TrustedIssuer, dict[str, Any]]:
        """The issuer and claims of a valid token; JwtRejected for anything else, whatever went wrong."""
        token = bearer_token(authorization)
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise JwtRejected("malformed token") from exc
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ASYMMETRIC:
            raise JwtRejected(f"algorithm not allowed: {clip(alg)}")
        if header.get("typ") not in (None, "JWT"):
            raise JwtRejected("typ is not JWT")
        iss = unverified.get("iss")
        issuer = self.issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise JwtRejected("untrusted issuer")
        if alg not in issuer.algorithms:
            raise JwtRejected(f"algorithm not allowed for this issuer: {alg}")
        if not isinstance(kid, str) or not kid:
            raise JwtRejected("missing kid")
        key = self._key(issuer, header, kid)
        if not key_fits(key, alg):
            raise JwtRejected(f"key type does not match the algorithm: {alg}")
        claims = self._decode(token, key, alg, audience, issuer)
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

    def _decode(self, token: str, key: Any, alg: str, audience: str, issuer: TrustedIssuer) -> dict[str, Any]:
        """Signature and registered claims by PyJWT; then the types PyJWT lets through (numeric strings)."""
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
        except Exception as exc:  # any other failure to verify (PyJWT or the key library) is a 401, never a 500
            raise JwtRejected(f"invalid token ({type(exc).__name__})") from exc
        for name in NUMERIC_CLAIMS:
            value = claims.get(name)
            if name in claims and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise JwtRejected(f"claim {name} is not a number")
        return claims

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


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer ...` header; the scheme is case-insensitive (RFC 7235 2.1)."""
    if not authorization or len(authorization) > 16384:
        raise JwtRejected("missing bearer token")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise JwtRejected("missing bearer token")
    return token.strip()


def key_fits(key: Any, alg: str) -> bool:
    """An EC key for ES*, an RSA key for RS*/PS*: PyJWT raises TypeError, not its own error, otherwise."""
    if alg.startswith("ES"):
        return isinstance(key, ec.EllipticCurvePublicKey)
    return isinstance(key, rsa.RSAPublicKey)
