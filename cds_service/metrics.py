"""Prometheus metrics. Under gunicorn every worker writes its own files in PROMETHEUS_MULTIPROC_DIR
(set by `cds-service serve` before this module is imported) and /metrics adds them up, so a scrape
sees the whole pod, not whichever worker answered it.

Labels are bounded sets (endpoint names, service ids, rule ids, indicators, reasons): never a URL, an
identifier or anything from a patient's record.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)

REQUESTS = Counter(
    "cds_http_requests_total",
    "HTTP requests answered, by endpoint, CDS service and status",
    ["endpoint", "service", "status"],
)
REQUEST_SECONDS = Histogram(
    "cds_http_request_duration_seconds",
    "Time to answer an HTTP request, by endpoint, CDS service and status",
    ["endpoint", "service", "status"],
    buckets=LATENCY_BUCKETS,
)
FHIR_FETCH_SECONDS = Histogram(
    "cds_fhir_fetch_duration_seconds",
    "Time for one prefetch query fetched from the EHR's FHIR server, by outcome (ok or failed)",
    ["outcome"],
    buckets=LATENCY_BUCKETS,
)
FHIR_FETCH_FAILURES = Counter(
    "cds_fhir_fetch_failures_total", "Prefetch queries that could not be fetched, by reason", ["reason"]
)
CARDS_ISSUED = Counter(
    "cds_cards_issued_total",
    "Cards returned to EHRs, by CDS service, rule and indicator",
    ["service", "rule", "indicator"],
)
FEEDBACK = Counter(
    "cds_feedback_total",
    "Feedback events stored (exact repeats not counted), by CDS service, rule, outcome and override reason code",
    ["service", "rule", "outcome", "reason"],
)
FEEDBACK_CARDS = Counter(
    "cds_feedback_cards_total",
    "Cards answered, each counted once by its first outcome (later clicks on the same card are events, "
    "not cards; `cds-service report` counts each card by its latest outcome)",
    ["service", "rule", "outcome", "reason"],
)
CARDS_HELD_BACK = Counter(
    "cds_cards_held_back_total",
    "Cards the rules raised that card memory kept from the EHR, by service, rule and reason",
    ["service", "rule", "reason"],
)
JWT_REJECTIONS = Counter("cds_jwt_rejections_total", "Calls refused because of their JWT, by reason", ["reason"])
STORE_ERRORS = Counter("cds_store_errors_total", "Database operations that failed, by operation", ["operation"])
CARDS_UNRECORDED = Counter(
    "cds_cards_unrecorded_total",
    "Cards issued whose record was lost, by reason "
    "(queue_full, spool_full, spool_unwritable, spool_unreadable, no_spool, unbuildable)",
    ["reason"],
)
CARDS_SPOOLED = Counter(
    "cds_cards_spooled_total", "Card records written to the local spool file at a stop, the store being unavailable"
)
CARDS_REPLAYED = Counter("cds_cards_replayed_total", "Card records replayed from the local spool into the store")
# min over live workers: one worker that cannot reach the store is enough to say so. Set by every
# store operation and by each worker's recorder every STORE_PROBE_SECONDS while idle.
STORE_UP = Gauge(
    "cds_store_up", "1 when the store answered and its schema is current, 0 when not", multiprocess_mode="livemin"
)

UNKNOWN_RULE = "unknown"  # feedback about a card this store never saw issued
_CHILDREN: dict[tuple[int, tuple[object, ...]], Any] = {}


def child(metric: Counter | Histogram, *labels: object) -> Any:
    """`metric.labels(*labels)`, looked up once per label set: prometheus_client takes a lock and
    converts every label at each `labels()` call, and the label sets are bounded (see above). The
    child it returns is the one prometheus_client keeps for those labels, so the counts are the same."""
    key = (id(metric), labels)
    found = _CHILDREN.get(key)
    if found is None:
        found = _CHILDREN[key] = metric.labels(*labels)
    return found


def jwt_reason_label(reason: str) -> str:
    """'algorithm not allowed: HS256' -> 'algorithm not allowed': a bounded label set."""
    return re.sub(r"\s*[:(].*$", "", reason).strip() or "other"


# prometheus_client's multi-process helpers carry no annotations: typed here, once.
_collect_workers: Callable[[CollectorRegistry], object] = multiprocess.MultiProcessCollector
_mark_process_dead: Callable[[int], None] = multiprocess.mark_process_dead


def exposition() -> tuple[bytes, str]:
    """The text for GET /metrics: every worker's values when running multi-process."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        _collect_workers(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def serve_on_own_port(host: str, port: int) -> None:
    """Serve /metrics from a thread of this (gunicorn master) process on its own port, apart from
    the port the EHR reaches: counters such as why a token failed are for operators, not callers."""
    from prometheus_client import start_http_server

    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        _collect_workers(registry)
    start_http_server(port, addr=host, registry=registry)


def worker_exited(pid: int) -> None:
    """Gunicorn child_exit hook: fold a dead worker's live values out of the multi-process files."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        _mark_process_dead(pid)
