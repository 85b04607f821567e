"""Flask app factory: the components built once, and one blueprint per concern (web/: hooks,
feedback, health; pages/: the rule pages). Each view declares its own access (access.py)."""

from __future__ import annotations

import logging

from flask import Flask

from . import instrumentation, tracing
from .config import SANDBOX_ISSUER, Settings
from .feedback import FeedbackStore, StoreUnavailable
from .feedback.connections import pool_size
from .feedback.recorder import CardRecorder
from .feedback.spool import CardSpool
from .fhir.client import FhirFetcher
from .pages import rule_pages
from .security import TokenVerifier
from .security.jwt_replay import ProcessJwtReplayCache, StoreJwtReplayCache
from .service import CdsService
from .web.auth import install_jwt_check
from .web.edge import install_cors, install_errors
from .web.feedback import feedback
from .web.health import health
from .web.hooks import hooks

log = logging.getLogger("cds_service")


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

    install_jwt_check(app, settings, verifier)
    app.register_blueprint(hooks(service, recorder))
    app.register_blueprint(feedback(service, store))
    app.register_blueprint(health(service, store))
    app.register_blueprint(rule_pages(service.knowledge, store, settings.now))
    install_errors(app, log)
    install_cors(app, settings.cors_allowed_origins)
    return app
