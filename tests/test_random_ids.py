"""Random ids from a per-thread pool of os.urandom bytes: valid uuids, never repeated, not shared
with a forked child or another thread."""

from __future__ import annotations

import os
import re
import threading
import uuid

import pytest

from cds_service import random_ids
from cds_service.random_ids import POOL_BYTES, new_request_id, new_uuid, random_bytes

pytestmark = pytest.mark.unit

UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def test_uuids_are_version_4_text_as_uuid_module_writes_it() -> None:
    for _ in range(3 * POOL_BYTES // 16):  # across several refills of the pool
        text = new_uuid()
        assert UUID4.fullmatch(text)
        parsed = uuid.UUID(text)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and str(parsed) == text


def test_no_id_repeats_within_a_thread_or_across_threads() -> None:
    seen: list[str] = []
    lock = threading.Lock()

    def draw() -> None:
        mine = [new_uuid() for _ in range(1000)] + [new_request_id() for _ in range(1000)]
        with lock:
            seen.extend(mine)

    threads = [threading.Thread(target=draw) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == len(set(seen)) == 8000


def test_each_thread_reads_its_own_pool() -> None:
    """A pool shared by threads would need a lock: the read position and the bytes would race."""
    random_bytes(16)
    mine = random_ids._pool.data
    theirs: list[bytes] = []
    thread = threading.Thread(target=lambda: (random_bytes(16), theirs.append(random_ids._pool.data)))
    thread.start()
    thread.join()
    assert theirs and theirs[0] != mine and random_ids._pool.data is mine


def test_request_ids_are_32_hex_digits() -> None:
    assert re.fullmatch(r"[0-9a-f]{32}", new_request_id())


def test_a_pool_is_read_to_its_end_then_refilled_never_reused() -> None:
    random_ids._forget_after_fork()
    first = b"".join(random_bytes(16) for _ in range(POOL_BYTES // 16))
    assert first == random_ids._pool.data  # the whole pool handed out, in order, once
    after = random_bytes(16)
    assert random_ids._pool.at == 16 and after == random_ids._pool.data[:16] and after not in first


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
def test_a_forked_child_does_not_hand_out_its_parents_next_bytes() -> None:
    random_ids._forget_after_fork()
    random_bytes(16)  # the parent's pool is part-read: a copy in the child would give the same next bytes
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: write its next id and leave at once
        os.write(write, new_uuid().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert UUID4.fullmatch(child) and child != new_uuid()


def test_more_than_a_pool_is_read_whole() -> None:
    assert len(random_bytes(POOL_BYTES + 1)) == POOL_BYTES + 1
