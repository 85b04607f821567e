"""The EHR's JWT, checked before every view that asks for a token (`access.view`)."""

from __future__ import annotations

import logging

from flask import Flask, Response, g, request

from .. import metrics
from ..access import Access, access_of_request
from ..config import Settings
from ..instrumentation import annotate
from ..logs import clip
from ..security import JwtRejected, TokenVerifier
from .edge import base_url, unauthorized

log = logging.getLogger("cds_service")
LOOPBACK = frozenset({"127.0.0.1", "::1"})
# A reverse proxy on this host makes every caller look like loopback; these headers give it away.
PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP", "X-Forwarded-Host", "X-Forwarded-Proto")
# The same headers as WSGI names them (PEP 3333): looked up in the environ, not through werkzeug's
# case-insensitive header view, which rebuilds each name on every lookup.
PROXY_ENVIRON_KEYS = tuple("HTTP_" + h.upper().replace("-", "_") for h in PROXY_HEADERS)


def install_jwt_check(app: Flask, settings: Settings, verifier: TokenVerifier) -> None:
    @app.before_request
    def authenticate() -> Response | None:
        """A view that asks for a token needs the EHR's JWT; with no trusted issuers, only direct
        loopback callers. `g.issuer`: the trusted issuer that signed it, else None."""
        g.issuer = None
        if request.method == "OPTIONS" or access_of_request() is Access.OPEN:
            return None
        if not settings.security.trusted_issuers:
            environ = request.environ
            proxied = any(key in environ for key in PROXY_ENVIRON_KEYS)
            if request.remote_addr in LOOPBACK and not proxied:
                return None
            reason = "proxied call without trusted issuers" if proxied else "no trusted issuers configured"
            log.warning("unsigned call refused: %s (configure security.trusted_issuers)", reason)
            metrics.JWT_REJECTIONS.labels(reason).inc()
            return unauthorized()
        audience = base_url(settings.public_base_url) + request.path
        try:
            g.issuer, _claims = verifier.verify(request.headers.get("Authorization"), audience)
        except JwtRejected as exc:
            log.info("JWT rejected on %s: %s", clip(request.path, 80), exc.reason)
            reason = metrics.jwt_reason_label(exc.reason)
            metrics.JWT_REJECTIONS.labels(reason).inc()
            annotate(jwt_rejected=reason)
            return unauthorized()
        return None
