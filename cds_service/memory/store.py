"""The card_memory table (`MemoryEntry`): upsert with an expiry, read only what has not expired,
purge the rest in the background. Any database error is MemoryUnavailable: the caller goes on
without memory. The memory service that decides what to keep is memory.py (`CardMemory`)."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Engine, Index, Row, String, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column

from ..database import Base

log = logging.getLogger(__name__)
PURGE_EVERY_SECONDS = 600.0
RETRY_AFTER_SECONDS = 10.0


class MemoryEntry(Base):
    """One row of card memory: what was shown, which card was about what, what is snoozed.
    Keys and the patient and product columns are keyed hashes (HMAC); nothing here names a patient or
    a clinician. Rows past `expires_at` are ignored on read and purged in the background."""

    __tablename__ = "card_memory"
    __table_args__ = (Index("ix_card_memory_expires_at", "expires_at"),)

    key: Mapped[str] = mapped_column(String(120), primary_key=True)  # "<kind>:<hash or card uuid>"
    kind: Mapped[str] = mapped_column(String(10))  # shown | card | snooze
    rule_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    patient: Mapped[str | None] = mapped_column(String(64), nullable=True)
    product: Mapped[str | None] = mapped_column(String(64), nullable=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class MemoryUnavailable(RuntimeError):
    """The database did not answer; names only the error type."""


class MemoryStore:
    def __init__(self, engine: Engine, clock: Callable[[], datetime], purge_every: float = PURGE_EVERY_SECONDS) -> None:
        """`clock`: the service's own (a fixed `--now` included), so expiry means the same everywhere."""
        self.engine = engine
        self.clock = clock
        self.purge_every = purge_every
        self._purger: threading.Thread | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._back_at = 0.0

    def put(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert rows, or renew the expiry (and facts) of a key already there."""
        if not rows:
            return
        self._check_back()
        self._start_purger()
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(MemoryEntry)
        statement = statement.on_conflict_do_update(
            index_elements=[MemoryEntry.key],
            set_={c: statement.excluded[c] for c in ("kind", "rule_id", "patient", "product", "expires_at")},
        )
        try:
            with self.engine.begin() as conn:
                conn.execute(statement, [dict(r) for r in rows])
        except (SQLAlchemyError, OSError) as exc:
            raise self._failed(exc) from exc

    def alive(self, keys: Iterable[str], now: datetime) -> dict[str, Row[Any]]:
        """The rows of these keys that have not expired at `now` (expiry is enforced here, on read):
        MemoryEntry's columns, read as plain rows (no ORM session on the hook path)."""
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        self._check_back()
        self._start_purger()
        table = MemoryEntry.__table__
        query = select(table).where(MemoryEntry.key.in_(wanted), MemoryEntry.expires_at > now.astimezone(UTC))
        try:
            with self.engine.connect() as conn:
                return {row.key: row for row in conn.execute(query)}
        except (SQLAlchemyError, OSError) as exc:
            raise self._failed(exc) from exc

    def _check_back(self) -> None:
        """After a failure the database is left alone for RETRY_AFTER_SECONDS: a store that hangs
        costs one hook call its wait, not every call (the same as the JWT replay cache)."""
        if time.monotonic() < self._back_at:
            raise MemoryUnavailable("store failed recently")

    def _failed(self, exc: Exception) -> MemoryUnavailable:
        self._back_at = time.monotonic() + RETRY_AFTER_SECONDS
        return MemoryUnavailable(type(getattr(exc, "orig", None) or exc).__name__)

    def purge(self, now: datetime | None = None) -> int:
        """Delete expired rows; how many."""
        cutoff = (now or self.clock()).astimezone(UTC)
        with self.engine.begin() as conn:
            return conn.execute(delete(MemoryEntry).where(MemoryEntry.expires_at <= cutoff)).rowcount or 0

    def _start_purger(self) -> None:
        """One purging thread per process (gunicorn workers fork after the app is built)."""
        if self._purger is not None and self._purger.is_alive() and self._pid == os.getpid():
            return
        with self._lock:
            if self._purger is None or not self._purger.is_alive() or self._pid != os.getpid():
                self._pid = os.getpid()
                self._purger = threading.Thread(target=self._purge_forever, name="memory-purge", daemon=True)
                self._purger.start()

    def _purge_forever(self) -> None:
        while True:
            try:
                removed = self.purge()
                if removed:
                    log.info("card memory: %d expired row(s) purged", removed)
            except (SQLAlchemyError, OSError) as exc:
                log.warning("card memory: purge failed (%s); retrying later", type(exc).__name__)
            threading.Event().wait(self.purge_every)
