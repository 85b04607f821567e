"""Random identifiers (card and suggestion uuids, request ids) from the operating system's random
source, read 4 KiB at a time per thread.

Why not `os.urandom(16)` each time: it lets go of the interpreter lock for the system call, and a
request thread that lets go may wait for another thread (the card writer, gunicorn's loop) to hand it
back; a served call makes some twenty ids. A sampling profile of a served worker put a tenth of the
request thread's samples there; measured served, the gain was within this machine's noise (bench/README,
ninth pass). The bytes are the same quality (os.urandom); each thread reads its own, and a forked worker
starts with none, so no two processes or threads ever hand out the same bytes."""

from __future__ import annotations

import os
import threading

POOL_BYTES = 4096


class _Pool(threading.local):
    def __init__(self) -> None:
        self.data = b""
        self.at = 0


_pool = _Pool()


def _forget_after_fork() -> None:
    """A child process must not reuse bytes its parent read (its threads' pools are copies)."""
    global _pool
    _pool = _Pool()


os.register_at_fork(after_in_child=_forget_after_fork)


def random_bytes(count: int) -> bytes:
    """`count` bytes from os.urandom, none ever handed out twice."""
    if count > POOL_BYTES:
        return os.urandom(count)
    pool = _pool
    at = pool.at
    if at + count > len(pool.data):
        pool.data, at = os.urandom(POOL_BYTES), 0
    pool.at = at + count
    return pool.data[at : at + count]


def new_uuid() -> str:
    """A random (version 4) UUID's text: what `str(uuid.uuid4())` gives. The version digit is 4, and the
    variant digit's two high bits are 10 (8, 9, a or b): set in the text, not in the bytes."""
    h = random_bytes(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


# A hex digit with its two high bits set to 10, as RFC 9562 asks of the variant.
_VARIANT = {digit: "89ab"[int(digit, 16) & 0x3] for digit in "0123456789abcdef"}


def new_request_id() -> str:
    """32 random hex digits (what `uuid.uuid4().hex` gave, without building a UUID)."""
    return random_bytes(16).hex()
