"""Wall-clock deadlines for blocking socket calls. A socket timeout bounds each read, not a call: a
peer that trickles a byte a second, or a database whose process is frozen while its kernel still
acknowledges packets, holds a call for ever. The watchdog shuts down the socket of a call that
passed its deadline, so the blocked read returns an error at once and the connection is discarded.

One thread per process (a forked gunicorn worker starts its own), waking only while calls are armed."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import count

TICK_SECONDS = 0.05  # deadline precision while something is armed


class Watchdog:
    def __init__(self) -> None:
        self._armed: dict[int, tuple[float, Callable[[], None]]] = {}
        self._tokens = count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def arm(self, seconds: float, expire: Callable[[], None]) -> int:
        """Call `expire` (from the watchdog's thread) unless disarmed within `seconds`."""
        with self._cond:
            if self._thread is None or self._pid != os.getpid():
                self._pid = os.getpid()
                self._armed.clear()
                self._thread = threading.Thread(target=self._run, name="deadline-watchdog", daemon=True)
                self._thread.start()
            token = next(self._tokens)
            self._armed[token] = (time.monotonic() + seconds, expire)
            if len(self._armed) == 1:
                self._cond.notify()
            return token

    def disarm(self, token: int) -> None:
        with self._cond:  # after this, `expire` is not running and will not run
            self._armed.pop(token, None)

    @contextmanager
    def socket_bound(self, fd: int, seconds: float) -> Iterator[None]:
        """Shut down socket `fd` if the block has not finished within `seconds`."""
        token = self.arm(seconds, lambda: shutdown(fd))
        try:
            yield
        finally:
            self.disarm(token)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._armed)
                now = time.monotonic()
                for token, (deadline, expire) in list(self._armed.items()):
                    if deadline <= now:
                        del self._armed[token]
                        with contextlib.suppress(Exception):  # a failing expiry must not stop the watchdog
                            expire()
                self._cond.wait(TICK_SECONDS)


def shutdown(fd: int) -> None:
    """Shut down both directions of socket `fd`: a call blocked on it returns with an error at once.
    (A duplicate descriptor shares the connection; closing it leaves `fd` to its owner.)"""
    try:
        with socket.socket(fileno=os.dup(fd)) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed or not connected: nothing left to stop


WATCHDOG = Watchdog()
