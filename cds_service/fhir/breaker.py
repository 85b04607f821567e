"""A circuit breaker per FHIR server: after CONSECUTIVE_SLOW calls in a row in which a fetch ran out
of time, the server is skipped for OPEN_SECONDS (its calls get the data-gap card at once instead of
holding a thread for the whole deadline); then one call is let through to try it again. Per
process: each gunicorn worker learns on its own, within a few calls."""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger(__name__)
CONSECUTIVE_SLOW = 3
OPEN_SECONDS = 30.0


class Breaker:
    def __init__(self, name: str, threshold: int = CONSECUTIVE_SLOW, open_seconds: float = OPEN_SECONDS) -> None:
        self.name = name
        self.threshold = threshold
        self.open_seconds = open_seconds
        self._slow = 0
        self._open_until = 0.0
        self._trying = False  # one call is trying the server after the open period
        self._lock = threading.Lock()

    def allow(self) -> bool:
        with self._lock:
            if self._slow < self.threshold:
                return True
            if time.monotonic() < self._open_until or self._trying:
                return False
            self._trying = True
            return True

    def record(self, slow: bool) -> None:
        with self._lock:
            was_open = self._slow >= self.threshold
            self._trying = False
            if not slow:
                if was_open:
                    log.warning("FHIR server %s answers in time again: calls resume", self.name)
                self._slow = 0
                return
            self._slow += 1
            if self._slow >= self.threshold:
                self._open_until = time.monotonic() + self.open_seconds
                if not was_open:
                    log.warning(
                        "FHIR server %s: %d calls in a row ran out of time; skipped for %g s (data-gap cards)",
                        self.name,
                        self._slow,
                        self.open_seconds,
                    )
