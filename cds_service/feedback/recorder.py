"""Records cards issued in a background thread, so a hook call never waits for the database nor
fails with it. While the database is down, rows wait in memory (bounded) and are retried with
backoff; a graceful stop (gunicorn's worker_exit hook calls close()) flushes them, and what still
cannot reach the database goes to the local spool file, replayed at the next start. Every record
that is lost on the way is counted (`cds_cards_unrecorded_total`, by reason) and logged.

A hook call may queue rows still to be built (`RowToBuild`, cards/explain.CardRow): the writer's
thread builds them when it takes them, so the call does not wait for that either."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, Protocol

from .. import metrics, tracing
from .spool import CardSpool
from .store import FeedbackStore, StoreUnavailable

log = logging.getLogger(__name__)
BATCH_SIZE = 500
MAX_BACKOFF_SECONDS = 30.0
MAX_HURRIED_BACKOFF_SECONDS = 1.0  # while a stop waits for the flush: retry often, never spin
LINGER_SECONDS = 0.25
STORE_PROBE_SECONDS = 15.0  # idle: ping the store this often, so `cds_store_up` stays current
WARN_EVERY_SECONDS = 60.0


class RowToBuild(Protocol):
    """A row whose mapping is built when it is written (by the writer's thread, or for the spool)."""

    def row(self) -> Mapping[str, Any]: ...


Row = Mapping[str, Any] | RowToBuild


class CardRecorder:
    def __init__(self, store: FeedbackStore, spool: CardSpool | None = None, max_pending: int = 50_000) -> None:
        self.store = store
        self.spool = spool
        self.max_pending = max_pending
        self._pending: list[Row] = []
        self._in_flight: list[Row] = []
        self._closing = False
        self._hurry = 0  # flush() bumps it: a writer sleeping in backoff retries soon
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def start(self) -> None:
        """Start this process's writer (also started by the first record); it probes an idle store."""
        if self._thread is None or self._pid != os.getpid():
            with self._cond:
                self._start_if_needed()

    def record(self, rows: Sequence[Row]) -> None:
        """Queue rows for `cards_issued`; never blocks on the database."""
        if not rows:
            return
        with (
            tracing.span("cds.store", **_store_span("queue-cards", len(rows))),
            self._cond,
        ):
            closing = self._closing
            if not closing:
                self._queue(rows)
        if closing:  # a call answered after the stop began: straight to the spool
            self._spool(list(rows), "after the stop")

    def _queue(self, rows: Sequence[Row]) -> None:
        """Add to the queue, the lock held."""
        self._start_if_needed()
        room = self.max_pending - len(self._pending)
        if room < len(rows):
            metrics.CARDS_UNRECORDED.labels("queue_full").inc(len(rows) - max(room, 0))
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
            if self._pending:
                self._start_if_needed()
            self._hurry += 1
            self._cond.notify_all()
            try:
                return self._cond.wait_for(lambda: not self._pending and not self._in_flight, timeout)
            finally:
                self._hurry -= 1

    def close(self, timeout: float = 5.0) -> bool:
        """Flush, then stop the thread. Rows still unwritten after `timeout`, the batch being written
        included, go to the spool (a batch that commits after all is not duplicated at replay)."""
        flushed = self.flush(timeout)
        with self._cond:
            self._closing = True
            left = [*self._in_flight, *self._pending]
            self._pending = []
            self._cond.notify_all()
        if left:
            self._spool(left, "at shutdown")
        return flushed

    def _spool(self, rows: list[Row], when: str) -> None:
        built = _built(rows)
        written, lost = self.spool.append(built) if self.spool else (0, len(built))
        if written:
            log.warning(
                "%s: %d card(s) issued could not reach the store and were spooled to %s (replayed at the next start)",
                when,
                written,
                self.spool.path if self.spool else "",
            )
        if lost:
            if not self.spool:
                metrics.CARDS_UNRECORDED.labels("no_spool").inc(lost)
            log.error("%s: %d card(s) issued could not be recorded (store unavailable) and were lost", when, lost)

    def _start_if_needed(self) -> None:
        # After a fork (gunicorn workers) the parent's thread does not exist in the child.
        if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name="card-recorder", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        failures = 0
        warned_at = 0.0
        while True:
            with self._cond:
                ready = bool(self._cond.wait_for(lambda: self._pending or self._closing, STORE_PROBE_SECONDS))
                if ready:
                    # Linger a moment so one transaction carries many cards: per-row cost falls several-fold.
                    self._cond.wait_for(
                        lambda: self._closing or self._hurry or len(self._pending) >= BATCH_SIZE, LINGER_SECONDS
                    )
                    if self._closing:
                        return
                    batch = self._pending[:BATCH_SIZE]
                    del self._pending[:BATCH_SIZE]
                    self._in_flight = batch
            if not ready:
                self._probe()
                continue
            rows = _built(batch)
            with self._cond:
                self._in_flight = list(rows)  # built: a stop spools these rows as they are
            try:
                with tracing.span("cds.store", **_store_span("write-cards", len(rows))):
                    self.store.record_cards(rows)  # its own trace: no hook call waits for it
            except StoreUnavailable as exc:
                failures += 1
                metrics.STORE_ERRORS.labels("record_cards").inc()
                self._probe()  # a store that answers again may first need its schema
                if time.monotonic() - warned_at > WARN_EVERY_SECONDS:  # one line a minute, not one per retry
                    warned_at = time.monotonic()
                    kept = len(rows) + len(self._pending)
                    log.warning("store unavailable (%s): %d card(s) kept for retry", exc, kept)
                with self._cond:
                    self._in_flight = []
                    if self._closing:
                        return  # close() has spooled this batch
                    self._pending[:0] = rows
                    self._cond.notify_all()
                    hurried = self._hurry
                    limit = MAX_HURRIED_BACKOFF_SECONDS if hurried else MAX_BACKOFF_SECONDS
                    backoff = min(0.25 * 2 ** (failures - 1), limit)
                    # A flush that starts now shortens the wait; one already under way does not end it.
                    self._cond.wait_for(partial(self._woken_since, hurried), backoff)
                continue
            if failures:
                log.warning("store available again: card recording resumed")
            failures = 0
            with self._cond:
                self._in_flight = []
                self._cond.notify_all()

    def _woken_since(self, hurried: int) -> bool:
        """A backoff ends early for a close, or a flush that started after it began."""
        return self._closing or self._hurry > hurried

    def _probe(self) -> None:
        """Ping the store (sets cds_store_up; migrates a store that was down at start) and, when it
        answers, replay a spool that a start could not."""
        with contextlib.suppress(StoreUnavailable):
            self.store.ping()
            if self.spool and self.spool.path.exists():
                self.spool.replay(self.store)


def _built(rows: Sequence[Row]) -> list[Mapping[str, Any]]:
    """Each row as the mapping the store and the spool take; one that cannot be built is logged (its
    error's type and place, never a value) and counted lost, and the others are kept."""
    built: list[Mapping[str, Any]] = []
    for row in rows:
        if isinstance(row, Mapping):
            built.append(row)
            continue
        try:
            built.append(row.row())
        except Exception:
            log.exception("a card record could not be built: 1 card(s) not recorded")
            metrics.CARDS_UNRECORDED.labels("unbuildable").inc()
    return built


def _store_span(operation: str, rows: int) -> dict[str, str | int]:
    """The attributes of a store span (their names have dots, so they cannot be keywords)."""
    return {"cds.store.operation": operation, "cds.store.rows": rows}
