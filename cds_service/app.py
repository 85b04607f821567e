"""Flask app factory: routes only. Every view is a thin shell around CdsService / FeedbackStore."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from .config import SANDBOX_ISSUER, Settings
from .feedback import FeedbackStore
from .fhir.client import FhirFetcher
from .protocol.errors import ProtocolError, operation_outcome
from .protocol.schemas import validate
from .security import JwtRejected, TokenVerifier
from .security.replay import MemoryReplayCache, SqlReplayCache
from .service import CdsService

log = logging.getLogger("cds_service")
JSON_TYPES = ("application/json", "application/fhir+json")
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
LOOPBACK = frozenset({"127.0.0.1", "::1"})


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    fetcher = FhirFetcher(
        settings.fhir_timeout_seconds,
        settings.fhir_deadline_seconds,
        settings.fhir_max_pages,
        settings.fhir_max_response_bytes,
    )
    service = CdsService(settings, fetcher)
    store = FeedbackStore(settings.effective_store_url)
    app.extensions["cds_service"] = service
    app.extensions["feedback_store"] = store
    # A configured database is shared by every worker and replica, so it catches replays across them.
    replay = SqlReplayCache(store.engine) if settings.store_url else MemoryReplayCache()
    verifier = TokenVerifier(
        settings.trusted_issuers,
        settings.fhir_timeout_seconds,
        settings.max_token_lifetime_seconds,
        settings.clock_skew_seconds,
        replay,
    )
    if any(i.iss == SANDBOX_ISSUER.iss for i in settings.trusted_issuers):
        log.warning("DEVELOPMENT MODE: tokens signed by the public CDS Hooks Sandbox key are trusted")

    @app.before_request
    def authenticate() -> Response | None:
        """Every CDS endpoint needs the EHR's JWT; with no trusted issuers, only loopback callers."""
        g.started = time.perf_counter()
        g.log_fields = {}
        g.issuer = None
        if request.method == "OPTIONS" or request.path in OPEN_PATHS:
            return None
        if not settings.trusted_issuers:
            if request.remote_addr in LOOPBACK:
                return None
            log.warning("unsigned call from a non-loopback address refused (no trusted issuers configured)")
            return _json(operation_outcome(401, "authentication required"), 401)
        audience = (settings.public_base_url or request.host_url.rstrip("/")) + request.path
        try:
            g.issuer, _claims = verifier.verify(request.headers.get("Authorization"), audience)
        except JwtRejected as exc:
            log.info("JWT rejected on %s: %s", request.path, exc.reason)
            return _json(operation_outcome(401, "authentication required"), 401)
        return None

    @app.get("/cds-services")
    def discovery() -> Response:
        return _json(service.describe())

    @app.post("/cds-services/<service_id>")
    def call_service(service_id: str) -> Response:
        body, rules = service.call(service_id, _json_body(), issuer=g.issuer)
        g.log_fields = {"service": service_id, "cards": len(rules), "rules": sorted(set(rules))}
        return _json(body)

    @app.post("/cds-services/<service_id>/feedback")
    def feedback(service_id: str) -> Response:
        if service_id not in service.service_ids:
            raise ProtocolError(404, None, f"no CDS service with id '{service_id}'")
        body = _json_body()
        validate("feedback", body)
        stored = store.add(service_id, body["feedback"])
        return _json({"received": len(body["feedback"]), "stored": stored})

    @app.get("/healthz")
    def healthz() -> Response:
        return _json({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> Response:
        try:
            store.ping()
        except Exception as exc:  # any driver error means "not ready", never a 500
            log.warning("readiness: feedback store unreachable (%s)", type(exc).__name__)
            return _json({"status": "unavailable", "store": "unreachable"}, 503)
        return _json({"status": "ok", "rules": len(service.knowledge.rules), "store": "ok"})

    @app.errorhandler(ProtocolError)
    def protocol_error(exc: ProtocolError) -> Response:
        return _json(exc.body(), exc.status)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        return _json(operation_outcome(exc.code or 500, exc.description or exc.name), exc.code or 500)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _json(operation_outcome(500, "internal error; it has been logged"), 500)

    @app.after_request
    def log_request(response: Response) -> Response:
        """One JSON line per request: what happened and how long it took; never patient data or tokens."""
        started = getattr(g, "started", None)
        line = {
            "event": "request",
            "method": request.method,
            "path": request.path[:200],
            "status": response.status_code,
            "ms": round((time.perf_counter() - started) * 1000, 2) if started else None,
            **getattr(g, "log_fields", {}),
        }
        log.info(json.dumps(line, separators=(",", ":")))
        return response

    @app.after_request
    def cors(response: Response) -> Response:
        origin = request.headers.get("Origin")
        allowed = settings.cors_allowed_origins
        if "*" in allowed:
            response.headers["Access-Control-Allow-Origin"] = "*"
        elif origin and origin in allowed:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type, X-Request-Id"
        response.headers["Access-Control-Max-Age"] = "600"
        return response

    return app


def _json_body() -> Any:
    mimetype = request.mimetype or ""
    if mimetype not in JSON_TYPES:
        raise ProtocolError(415, None, f"Content-Type must be application/json, got '{mimetype or 'none'}'")
    raw = request.get_data(cache=False)
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, json.JSONDecodeError):
            detail = f" ({exc.msg} at line {exc.lineno} column {exc.colno})"
        else:
            detail = f" ({exc})" if isinstance(exc, ValueError) else " (nested too deeply)"
        raise ProtocolError(400, None, f"body is not valid JSON{detail}") from None


def _reject_constant(name: str) -> Any:
    """NaN and Infinity are not JSON (RFC 8259); Python would otherwise accept them as numbers."""
    raise ValueError(f"{name} is not a JSON number")


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status=status, mimetype="application/json")
