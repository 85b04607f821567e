"""JWT replay protection: caches of the `jti` values seen, in memory (one process) or in the store's
`jwt_replay` table, which every gunicorn worker and every replica share. (History replay, the shadow
mode, is simulate/.)"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

from sqlalchemy import Float, String, delete
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column

from .. import metrics
from ..database import Base, insert_ignoring_repeats


class JwtReplay(Base):
    """JWT ids seen until their token expires: shared by every worker and replica."""

    __tablename__ = "jwt_replay"

    key: Mapped[str] = mapped_column(String(600), primary_key=True)
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class JwtReplayCache(Protocol):
    def first_use(self, key: str, expires_at: float) -> bool:
        """True the first time a key is seen before it expires; False for a replay."""


REPLAY = JwtReplay.__table__
log = logging.getLogger(__name__)


class ProcessJwtReplayCache:
    """jti values seen, kept until their token expires. Per process: fine for one worker."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def first_use(self, key: str, expires_at: float) -> bool:
        now = time.time()
        with self._lock:
            if len(self._seen) > 10_000:
                self._seen = {k: v for k, v in self._seen.items() if v > now}
            if key in self._seen and self._seen[key] > now:
                return False
            self._seen[key] = expires_at
            return True


class StoreJwtReplayCache:
    """The first insert of a key wins; a second one (any worker, any replica) is a replay.
    The table comes with the store's migrations.

    If the database fails, hook calls must still be answered: this process falls back to its own
    memory for `fallback_seconds` (replays across replicas are then not caught), and says so in the
    log and in cds_store_errors_total{operation="jwt_replay"}.
    """

    def __init__(self, engine: Engine, fallback_seconds: float = 10.0) -> None:
        self.engine = engine
        self.fallback_seconds = fallback_seconds
        self._in_process = ProcessJwtReplayCache()
        self._database_back_at = 0.0
        self._inserts = 0

    def first_use(self, key: str, expires_at: float) -> bool:
        if time.monotonic() >= self._database_back_at:
            try:
                return self._first_use_in_database(key, expires_at)
            except SQLAlchemyError as exc:
                self._database_back_at = time.monotonic() + self.fallback_seconds
                metrics.STORE_ERRORS.labels("jwt_replay").inc()
                log.warning(
                    "replay cache: database unavailable (%s); this process's memory for %gs",
                    type(getattr(exc, "orig", None) or exc).__name__,
                    self.fallback_seconds,
                )
        return self._in_process.first_use(key, expires_at)

    def _first_use_in_database(self, key: str, expires_at: float) -> bool:
        with self.engine.begin() as conn:
            self._inserts += 1
            if self._inserts % 500 == 0:
                conn.execute(delete(JwtReplay).where(JwtReplay.expires_at < time.time()))
            statement = insert_ignoring_repeats(self.engine.dialect.name, REPLAY).values(key=key, expires_at=expires_at)
            first = conn.execute(statement.returning(REPLAY.c.key)).first() is not None
        self._in_process.first_use(key, expires_at)  # remembered here too, for an outage to come
        return first
