"""The store's engine: bounded connection pools and bounded waits, and connections discarded after
an error that leaves them unusable.

- A connection that failed with an I/O or read-only error is thrown away, and the pool with it: a
  SQLite file opened while its folder was read-only stays read-only for as long as it is pooled
  (its pre-ping still passes), a PostgreSQL standby stays one after a failover.
- PostgreSQL calls are bounded on the client: connect_timeout and TCP keepalives / tcp_user_timeout
  for a dead peer; and, for a frozen one (its kernel still acknowledges, so no TCP timer fires and
  a server-side statement_timeout cannot run), every statement, commit and ping is armed with the
  deadline watchdog, which shuts the socket down when it passes; a store operation as a whole has
  OPERATION_SECONDS (`operation()`), so a feedback post answers 503 within about 3 s, whatever the
  database does.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine

from ..deadline import WATCHDOG

CONNECT_TIMEOUT_SECONDS = 2  # libpq's smallest
STATEMENT_SECONDS = 2.0
PING_SECONDS = 0.5  # a pooled connection's pre-ping: a live server answers in well under a millisecond
OPERATION_SECONDS = 2.5
SERVER_STATEMENT_TIMEOUT_MS = 5000  # the server's own bound, for a query that runs long but is not frozen
SQLITE_BUSY_SECONDS = 2.0
POOL_TIMEOUT_SECONDS = 1.0
# Threads of a worker that use the store besides its request threads: the card recorder, and card
# memory's purger when memory is on.
RECORDER_THREADS = 1
MEMORY_THREADS = 1
_PING = ";"  # SQLAlchemy's pre-ping statement on psycopg
_local = threading.local()


def pool_size(threads: int, memory: bool) -> int:
    """Connections one worker may hold: one per request thread and per background thread (the
    README's connection budget: pods x workers x pool_size <= what the database admits)."""
    return threads + RECORDER_THREADS + (MEMORY_THREADS if memory else 0)


def make_engine(url: str, pool: int = 5) -> Engine:
    if url.startswith("postgresql"):
        engine = create_engine(
            url,
            pool_pre_ping=True,
            pool_size=pool,
            max_overflow=0,
            pool_timeout=POOL_TIMEOUT_SECONDS,
            connect_args={
                "connect_timeout": CONNECT_TIMEOUT_SECONDS,
                "options": f"-c statement_timeout={SERVER_STATEMENT_TIMEOUT_MS}",
                "application_name": "cds-service",
                "keepalives": 1,
                "keepalives_idle": 10,
                "keepalives_interval": 3,
                "keepalives_count": 3,
                "tcp_user_timeout": int(OPERATION_SECONDS * 1000),
            },
        )
        event.listen(engine, "do_connect", _guarded_connect)
    else:
        engine = create_engine(url, pool_pre_ping=True, connect_args={"timeout": SQLITE_BUSY_SECONDS})
    event.listen(engine, "handle_error", _discard_broken)
    return engine


@contextmanager
def operation(seconds: float = OPERATION_SECONDS) -> Iterator[None]:
    """Bound every PostgreSQL call this thread makes within the block to `seconds` in all."""
    outer = getattr(_local, "deadline", None)
    _local.deadline = time.monotonic() + seconds if outer is None else outer
    try:
        yield
    finally:
        _local.deadline = outer


class DeadlinePassed(psycopg.OperationalError):
    """A PostgreSQL call did not finish within its deadline; its connection was shut down."""


def _bound(seconds: float) -> float:
    deadline: float | None = getattr(_local, "deadline", None)
    if deadline is None:
        return seconds
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise DeadlinePassed("the store operation's deadline passed")
    return min(seconds, remaining)


class _GuardedCursor(psycopg.Cursor[Any]):
    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        seconds = _bound(PING_SECONDS if query == _PING else STATEMENT_SECONDS)
        with _watched(self.connection, seconds):
            return super().execute(query, params, **kwargs)

    def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> None:
        with _watched(self.connection, _bound(STATEMENT_SECONDS)):
            super().executemany(query, params_seq, **kwargs)


class _GuardedConnection(psycopg.Connection[Any]):
    def commit(self) -> None:
        with _watched(self, _bound(STATEMENT_SECONDS)):
            super().commit()

    def rollback(self) -> None:
        with _watched(self, STATEMENT_SECONDS):  # never refused: a rollback ends a failed operation
            super().rollback()


@contextmanager
def _watched(conn: psycopg.Connection[Any], seconds: float) -> Iterator[None]:
    if conn.closed:  # nothing to wait for: psycopg answers at once
        yield
        return
    started = time.monotonic()
    try:
        with WATCHDOG.socket_bound(conn.fileno(), seconds):
            yield
    except psycopg.OperationalError as exc:
        if time.monotonic() - started >= seconds:
            raise DeadlinePassed(f"no answer within {seconds:.2g} s") from exc
        raise


def _guarded_connect(dialect: Any, conn_rec: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
    return _GuardedConnection.connect(*cargs, cursor_factory=_GuardedCursor, **cparams)


READ_ONLY_OR_IO = ("readonly", "read-only", "disk i/o error", "unable to open database file", "disk is full")


def _discard_broken(context: Any) -> None:
    """An error after which this connection (and its pool) must not be reused."""
    error = context.original_exception
    postgresql = isinstance(error, psycopg.OperationalError | psycopg.errors.ReadOnlySqlTransaction)
    sqlite = isinstance(error, sqlite3.DatabaseError) and any(w in str(error).lower() for w in READ_ONLY_OR_IO)
    if postgresql or sqlite:
        context.is_disconnect = True
