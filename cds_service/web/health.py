"""Probes and the store's health: open to anyone (no patient data, no token)."""

from __future__ import annotations

import logging

from flask import Blueprint, Response

from ..access import Access, view
from ..feedback import FeedbackStore, StoreUnavailable
from ..service import CdsService
from .edge import json_response

log = logging.getLogger("cds_service")


def health(service: CdsService, store: FeedbackStore) -> Blueprint:
    blueprint = Blueprint("health", __name__)

    @blueprint.get("/healthz")
    @view("healthz", Access.OPEN)
    def healthz() -> Response:
        return json_response({"status": "ok"})

    @blueprint.get("/readyz")
    @view("readyz", Access.OPEN)
    def readyz() -> Response:
        """Ready = able to answer hooks: configuration and knowledge loaded (done at start). The store is
        not asked: it serves feedback and records, and its outage must not take the pod out of service."""
        return json_response({"status": "ok", "config": "ok", "rules": len(service.knowledge.rules)})

    @blueprint.get("/healthz/store")
    @view("store-health", Access.OPEN)
    def store_health() -> Response:
        """The store reachable and migrated (also `cds_store_up`): for operators and alerts, never a probe."""
        try:
            store.ping()
        except StoreUnavailable as exc:
            log.warning("store health: unavailable (%s)", exc)
            return json_response({"status": "unavailable", "store": store.dialect, "error": str(exc)}, 503)
        return json_response({"status": "ok", "store": store.dialect})

    return blueprint
