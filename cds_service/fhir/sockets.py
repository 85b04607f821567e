"""Fetches that can be abandoned: the socket a fetch is using, whatever phase it is in (connecting,
sending, waiting for headers, reading a trickling body), is shut down when the fetch is abandoned,
so the thread blocked on it returns at once and the connection is discarded, never pooled again."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_current = threading.local()


class Abandon:
    """One fetch's off switch; the socket it is on is attached by the connection classes below."""

    def __init__(self) -> None:
        self.abandoned = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    def attach(self, sock: socket.socket | None) -> None:
        with self._lock:
            self._sock = sock
            gone = self.abandoned
        if gone and sock is not None:
            _shutdown(sock)

    def abandon(self) -> None:
        with self._lock:
            self.abandoned = True
            sock, self._sock = self._sock, None
        if sock is not None:
            _shutdown(sock)


@contextmanager
def abandoning(holder: Abandon) -> Iterator[None]:
    """Requests this thread makes within the block attach their sockets to `holder`."""
    _current.holder = holder
    try:
        yield
    finally:
        holder.attach(None)  # the connection goes back to the pool: no longer this fetch's
        _current.holder = None


def current_abandoned() -> bool:
    holder = getattr(_current, "holder", None)
    return holder is not None and holder.abandoned


def _attach(sock: socket.socket | None) -> None:
    holder = getattr(_current, "holder", None)
    if holder is not None and sock is not None:
        holder.attach(sock)


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed: nothing left to stop
        sock.shutdown(socket.SHUT_RDWR)


class _Connection(HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _attach(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _attach(self.sock)  # a kept-alive connection (a new one attaches in connect)
        super().request(*args, **kwargs)


class _TlsConnection(HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _attach(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _attach(self.sock)
        super().request(*args, **kwargs)


class _Pool(HTTPConnectionPool):
    ConnectionCls = _Connection


class _TlsPool(HTTPSConnectionPool):
    ConnectionCls = _TlsConnection


class DeadlineAdapter(HTTPAdapter):
    """requests' adapter whose connections attach their sockets to the fetch using them."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _Pool, "https": _TlsPool}
