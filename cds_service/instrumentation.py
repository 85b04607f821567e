"""Per-request bookkeeping around the views: a request id (the caller's X-Request-Id, or a new one),
one JSON log line, and the request metrics. Views add their own fields with `annotate()`."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Container
from typing import Any

from flask import Flask, Response, g, request

from . import metrics
from .access import metric_name
from .logs import clip
from .random_ids import new_request_id

log = logging.getLogger("cds_service.request")
REQUEST_ID_HEADER = "X-Request-Id"
SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


def annotate(**fields: object) -> None:
    """Add fields to this request's log line (ids, counts and codes only, never patient data)."""
    g.log_fields.update(fields)


def install(app: Flask, service_ids: Container[str]) -> None:
    @app.before_request
    def start() -> None:
        g.started = time.perf_counter()
        g.log_fields = {}
        offered = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = offered if SAFE_REQUEST_ID.fullmatch(offered) else new_request_id()

    @app.after_request
    def finish(response: Response) -> Response:
        started = getattr(g, "started", None)
        seconds = time.perf_counter() - started if started else 0.0
        endpoint = metric_name()  # as its view declares it (access.py)
        wanted = (request.view_args or {}).get("service_id")
        service = wanted if wanted in service_ids else ("unknown" if wanted else "")
        status = str(response.status_code)
        metrics.child(metrics.REQUESTS, endpoint, service, status).inc()
        metrics.child(metrics.REQUEST_SECONDS, endpoint, service, status).observe(seconds)
        request_id = getattr(g, "request_id", None) or new_request_id()
        response.headers[REQUEST_ID_HEADER] = request_id
        fields = {
            "event": "request",
            "request_id": request_id,
            "method": request.method,
            "path": clip(request.path, 80),
            "endpoint": endpoint,
            "status": response.status_code,
            "ms": round(seconds * 1000, 2),
            **getattr(g, "log_fields", {}),
        }
        if service:
            fields.setdefault("service", service)
        level = logging.INFO if endpoint not in ("healthz", "readyz", "store-health", "metrics") else logging.DEBUG
        log.log(level, "%s", _JsonText(fields), extra={"json_fields": fields, "request_id": request_id})
        return response


class _JsonText:
    """The fields as JSON text, built only when a handler formats the message: JsonFormatter writes
    `json_fields` directly, so in service the line is serialised once."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields

    def __str__(self) -> str:
        return json.dumps(self.fields, separators=(",", ":"))
