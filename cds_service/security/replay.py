"""Replay caches for JWT `jti`: in memory (one process) or in the configured database, which every
gunicorn worker and every replica share."""

from __future__ import annotations

import threading
import time
from typing import Protocol

from sqlalchemy import Column, Float, MetaData, String, Table, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

METADATA = MetaData()


class ReplayCache(Protocol):
    def first_use(self, key: str, expires_at: float) -> bool:
        """True the first time a key is seen before it expires; False for a replay."""


REPLAY = Table("jwt_replay", METADATA, Column("key", String(600), primary_key=True), Column("expires_at", Float))


class MemoryReplayCache:
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


class SqlReplayCache:
    """The first insert of a key wins; a second one (any worker, any replica) is a replay."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        METADATA.create_all(engine)
        self._inserts = 0

    def first_use(self, key: str, expires_at: float) -> bool:
        insert = (postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert)(REPLAY)
        with self.engine.begin() as conn:
            self._inserts += 1
            if self._inserts % 500 == 0:
                conn.execute(delete(REPLAY).where(REPLAY.c.expires_at < time.time()))
            result = conn.execute(insert.values(key=key, expires_at=expires_at).on_conflict_do_nothing())
            return result.rowcount == 1
