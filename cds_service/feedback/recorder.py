"""Records cards issued in a background thread, so a hook call never waits for the database nor
fails with it. While the database is down, rows wait in memory (bounded) and are retried with
backoff; they are flushed on graceful shutdown (gunicorn's worker_exit hook calls close())."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from .. import metrics, tracing
from .store import FeedbackStore, StoreUnavailable

log = logging.getLogger(__name__)
BATCH_SIZE = 500
MAX_BACKOFF_SECONDS = 30.0
LINGER_SECONDS = 0.25


class CardRecorder:
    def __init__(self, store: FeedbackStore, max_pending: int = 50_000) -> None:
        self.store = store
        self.max_pending = max_pending
        self._pending: list[Mapping[str, Any]] = []
        self._in_flight = 0
        self._closing = False
        self._hurry = False  # flush() asks a thread sleeping in backoff to retry now
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def record(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Queue rows for `cards_issued`; never blocks on the database."""
        if not rows:
            return
        with (
            tracing.span("cds.store", **{"cds.store.operation": "queue-cards", "cds.store.rows": len(rows)}),
            self._cond,
        ):
            self._start_if_needed()
            room = self.max_pending - len(self._pending)
            if room < len(rows):
                metrics.CARDS_UNRECORDED.inc(len(rows) - max(room, 0))
                log.warning("card recording queue full: %d card(s) not recorded", len(rows) - max(room, 0))
            was_empty = not self._pending
            self._pending.extend(rows[: max(room, 0)])
            # Wake the writer only when it waits for a first row or a full batch; otherwise it is
            # lingering anyway, and a wake-up per hook call would cost every call a context switch.
            if was_empty or len(self._pending) >= BATCH_SIZE:
                self._cond.notify()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued row is written; False if that did not happen within `timeout`."""
        with self._cond:
            self._hurry = True
            self._cond.notify_all()
            done = self._cond.wait_for(lambda: not self._pending and not self._in_flight, timeout)
            self._hurry = False
            return done

    def close(self, timeout: float = 5.0) -> bool:
        """Flush, then stop the thread. Rows still unwritten after `timeout` are counted as lost."""
        flushed = self.flush(timeout)
        with self._cond:
            self._closing = True
            lost = len(self._pending)
            self._cond.notify_all()
        if lost:
            metrics.CARDS_UNRECORDED.inc(lost)
            log.error("shutdown: %d card(s) issued could not be recorded (store unavailable)", lost)
        return flushed

    def _start_if_needed(self) -> None:
        # After a fork (gunicorn workers) the parent's thread does not exist in the child.
        if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name="card-recorder", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        failures = 0
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._closing)
                # Linger a moment so one transaction carries many cards: per-row cost falls several-fold.
                self._cond.wait_for(
                    lambda: self._closing or self._hurry or len(self._pending) >= BATCH_SIZE, LINGER_SECONDS
                )
                if self._closing:
                    return
                batch = self._pending[:BATCH_SIZE]
                del self._pending[:BATCH_SIZE]
                self._in_flight = len(batch)
            try:
                with tracing.span("cds.store", **{"cds.store.operation": "write-cards", "cds.store.rows": len(batch)}):
                    self.store.record_cards(batch)  # its own trace: no hook call waits for it
            except StoreUnavailable as exc:
                failures += 1
                metrics.STORE_ERRORS.labels("record_cards").inc()
                log.warning("store unavailable (%s): %d card(s) kept for retry", exc, len(batch))
                with self._cond:
                    self._pending[:0] = batch
                    self._in_flight = 0
                    self._cond.notify_all()
                    backoff = 0.2 if self._hurry else min(0.5 * 2**failures, MAX_BACKOFF_SECONDS)
                    self._cond.wait_for(lambda: self._closing or self._hurry, backoff)
                continue
            failures = 0
            with self._cond:
                self._in_flight = 0
                self._cond.notify_all()
