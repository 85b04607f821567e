"""Flask app factory: routes only. Every view is a thin shell around CdsService / FeedbackStore."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from . import fastjson, instrumentation, metrics, tracing
from .cards.explain import for_the_record
from .config import SANDBOX_ISSUER, Settings
from .feedback import FeedbackStore, StoreUnavailable
from .feedback.connections import pool_size
from .feedback.recorder import CardRecorder
from .feedback.spool import CardSpool
from .fhir.client import FhirFetcher
from .instrumentation import annotate
from .logs import clip
from .pages import rule_pages
from .pages.links import PATH as RULE_PAGES
from .protocol.errors import ProtocolError, operation_outcome
from .protocol.schemas import validate
from .record.fhir_types import decode_body
from .security import JwtRejected, TokenVerifier
from .security.jwt_replay import ProcessJwtReplayCache, StoreJwtReplayCache
from .service import CdsService

log = logging.getLogger("cds_service")
JSON_TYPES = ("application/json", "application/fhir+json")
STORE_HEALTH = "/healthz/store"
OPEN_PATHS = frozenset({"/healthz", "/readyz", STORE_HEALTH})
# Rule pages hold no patient data; a clinician opens them from a card in a browser, with no EHR token.
PAGES_POLICY = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
LOOPBACK = frozenset({"127.0.0.1", "::1"})
# A reverse proxy on this host makes every caller look like loopback; these headers give it away.
PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP", "X-Forwarded-Host", "X-Forwarded-Proto")
CHALLENGE = 'Bearer realm="cds-services"'  # RFC 7235 3.1: a 401 says which scheme; never why
RETRY_AFTER_SECONDS = "5"


def create_app(settings: Settings | None = None, threads: int = 4) -> Flask:
    """`threads`: request threads per worker (gunicorn's), which size the store's connection pool."""
    settings = settings or Settings()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    fetcher = FhirFetcher.configured(settings.fhir)
    pool = pool_size(threads, settings.memory.enabled)
    store = FeedbackStore(settings.store.url, keep_user_comments=settings.store.keep_user_comments, pool_size=pool)
    service = CdsService(settings, fetcher, store.engine)
    spool = CardSpool(settings.store.data_dir)
    try:
        store.ensure_schema()
        spool.replay(store)  # what an earlier stop could not write
    except StoreUnavailable as exc:  # hooks need no store: serve them, and catch up when it answers
        log.error(
            "store unavailable at start (%s): hook calls are served; feedback answers 503 and issued cards "
            "wait until it answers (then its schema is brought up to date and the card spool replayed)",
            exc,
        )
    recorder = CardRecorder(store, spool)
    app.extensions.update(cds_service=service, feedback_store=store, card_recorder=recorder)
    # The store's database (SQLite in data_dir by default) is shared by every worker, every replica on
    # PostgreSQL, and the next start: a replay is caught across all of them.
    replay = StoreJwtReplayCache(store.engine) if settings.security.trusted_issuers else ProcessJwtReplayCache()
    verifier = TokenVerifier(
        settings.security.trusted_issuers,
        settings.fhir.timeout_seconds,
        settings.security.max_token_lifetime_seconds,
        settings.security.clock_skew_seconds,
        replay,
    )
    if any(i.iss == SANDBOX_ISSUER.iss for i in settings.security.trusted_issuers):
        log.warning("DEVELOPMENT MODE: tokens signed by the public CDS Hooks Sandbox key are trusted")
    instrumentation.install(app, service.service_ids)
    tracing.install(app, service.service_ids)  # a span per hook call when OTEL_* asks for traces

    @app.before_request
    def start_recorder() -> None:
        recorder.start()  # this worker's writer, which also keeps `cds_store_up` current

    @app.before_request
    def authenticate() -> Response | None:
        """Every CDS endpoint needs the EHR's JWT; with no trusted issuers, only direct loopback callers."""
        g.issuer = None
        if request.method == "OPTIONS" or request.path in OPEN_PATHS or _is_page(request.path):
            return None
        if not settings.security.trusted_issuers:
            proxied = any(h in request.headers for h in PROXY_HEADERS)
            if request.remote_addr in LOOPBACK and not proxied:
                return None
            reason = "proxied call without trusted issuers" if proxied else "no trusted issuers configured"
            log.warning("unsigned call refused: %s (configure security.trusted_issuers)", reason)
            metrics.JWT_REJECTIONS.labels(reason).inc()
            return _unauthorized()
        audience = (settings.public_base_url or request.host_url.rstrip("/")) + request.path
        try:
            g.issuer, _claims = verifier.verify(request.headers.get("Authorization"), audience)
        except JwtRejected as exc:
            log.info("JWT rejected on %s: %s", clip(request.path, 80), exc.reason)
            reason = metrics.jwt_reason_label(exc.reason)
            metrics.JWT_REJECTIONS.labels(reason).inc()
            annotate(jwt_rejected=reason)
            return _unauthorized()
        return None

    @app.get("/cds-services")
    def discovery() -> Response:
        return _json(service.describe(g.issuer.iss if g.issuer else None))

    @app.post("/cds-services/<service_id>")
    def call_service(service_id: str) -> Response:
        body = _json_body()
        base_url = settings.public_base_url or request.host_url.rstrip("/")
        response, rules, held = service.call(service_id, body, issuer=g.issuer, base_url=base_url)
        cards = [c for c in response["cards"] if "topic" in c["source"]]  # not memory's own info card
        annotate(service=service_id, hook=body["hook"], cards=len(cards), rules=sorted(set(rules)))
        for card in cards:
            metrics.child(metrics.CARDS_ISSUED, service_id, _rule(card), card["indicator"]).inc()
        for item in held:
            metrics.CARDS_HELD_BACK.labels(service_id, _rule(item.card), item.reason).inc()
        if held:
            annotate(held_back=len(held))
        rows = [_issued(card, service_id, body) for card in cards]
        rows += [{**_issued(item.card, service_id, body), "held_back": item.reason} for item in held]
        recorder.record(rows)
        return _json(response)

    @app.post("/cds-services/<service_id>/feedback")
    def feedback(service_id: str) -> Response:
        if service_id not in service.service_ids:
            raise ProtocolError(404, None, f"no CDS service with id '{service_id}'")
        body = _json_body()
        validate("feedback", body)
        try:
            stored = store.add(service_id, body["feedback"])
        except StoreUnavailable as exc:
            log.warning("feedback not stored: store unavailable (%s)", exc)
            metrics.STORE_ERRORS.labels("feedback").inc()
            outcome = operation_outcome(503, "feedback store unavailable; nothing was stored, please retry")
            response = _json(outcome, 503)
            response.headers["Retry-After"] = RETRY_AFTER_SECONDS
            return response
        for item in stored:
            rule = item.rule_id or metrics.UNKNOWN_RULE
            metrics.FEEDBACK.labels(service_id, rule, item.outcome, item.reason_code or "").inc()
            if item.first_for_card:
                metrics.FEEDBACK_CARDS.labels(service_id, rule, item.outcome, item.reason_code or "").inc()
        if service.memory is not None:
            snoozed = service.memory.snooze(body["feedback"], service.now())
            if snoozed:
                annotate(snoozed=snoozed)
        annotate(service=service_id, feedback=len(body["feedback"]), stored=len(stored))
        return _json({"received": len(body["feedback"]), "stored": len(stored)})

    @app.get("/healthz")
    def healthz() -> Response:
        return _json({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> Response:
        """Ready = able to answer hooks: configuration and knowledge loaded (done at start). The store is
        not asked: it serves feedback and records, and its outage must not take the pod out of service."""
        return _json({"status": "ok", "config": "ok", "rules": len(service.knowledge.rules)})

    @app.get(STORE_HEALTH)
    def store_health() -> Response:
        """The store reachable and migrated (also `cds_store_up`): for operators and alerts, never a probe."""
        try:
            store.ping()
        except StoreUnavailable as exc:
            log.warning("store health: unavailable (%s)", exc)
            return _json({"status": "unavailable", "store": store.dialect, "error": str(exc)}, 503)
        return _json({"status": "ok", "store": store.dialect})

    app.register_blueprint(rule_pages(service.knowledge, store, settings.now))

    @app.errorhandler(ProtocolError)
    def protocol_error(exc: ProtocolError) -> Response:
        return _json(exc.body(), exc.status)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        return _json(operation_outcome(exc.code or 500, exc.description or exc.name), exc.code or 500)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url_rule or "unmatched route")
        return _json(operation_outcome(500, "internal error; it has been logged"), 500)

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
        response.headers["Access-Control-Expose-Headers"] = "X-Request-Id"
        response.headers["Access-Control-Max-Age"] = "600"
        if _is_page(request.path):
            response.headers["Content-Security-Policy"] = PAGES_POLICY  # nothing but the page itself loads
            response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    return app


def _is_page(path: str) -> bool:
    return path == RULE_PAGES or path.startswith(RULE_PAGES + "/")


def _rule(card: dict[str, Any]) -> str:
    return card["source"]["topic"]["code"]


def _issued(card: dict[str, Any], service_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """The row kept for a card issued: ids and codes only, nothing about the patient."""
    return {
        "card_uuid": card["uuid"],
        "service_id": service_id,
        "hook": body["hook"],
        "hook_instance": str(body["hookInstance"])[:100],
        "rule_id": _rule(card),
        "indicator": card["indicator"],
        "issued_at": datetime.now(UTC),
        "held_back": None,
        "explanation": for_the_record(card),
    }


def _json_body() -> Any:
    mimetype = request.mimetype or ""
    if mimetype not in JSON_TYPES:
        raise ProtocolError(415, None, f"Content-Type must be application/json, got '{mimetype or 'none'}'")
    raw = request.get_data(cache=False)
    limit = request.max_content_length
    # A chunked body (no Content-Length) is cut at the limit without a word (werkzeug): more of it
    # left means too large.
    chunked = limit is not None and request.content_length is None and len(raw) >= limit
    if chunked and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge(f"the body is larger than {limit} bytes")
    body = decode_body(raw)  # one pass, the Observation bundles typed; None: parsed as before
    if body is not None:
        return body
    try:
        return fastjson.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, json.JSONDecodeError):
            detail = f" ({exc.msg} at line {exc.lineno} column {exc.colno})"
        else:
            detail = f" ({exc})" if isinstance(exc, ValueError) else " (nested too deeply)"
        raise ProtocolError(400, None, f"body is not valid JSON{detail}") from None


def _reject_constant(name: str) -> Any:
    """NaN and Infinity are not JSON (RFC 8259); Python would otherwise accept them as numbers."""
    raise ValueError(f"{name} is not a JSON number")


def _unauthorized() -> Response:
    """401 with an OperationOutcome that says only that authentication is required, and the challenge."""
    response = _json(operation_outcome(401, "authentication required"), 401)
    response.headers["WWW-Authenticate"] = CHALLENGE
    return response


def _json(body: Any, status: int = 200) -> Response:
    return Response(fastjson.dumps(body), status=status, mimetype="application/json")
