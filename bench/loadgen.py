"""A bounded HTTP load generator: C client processes, each with one keep-alive connection, POST the
same body back to back for a fixed time (or, with `fresh`, a copy of it made new for every request);
latencies are collected per request. Loopback only."""

from __future__ import annotations

import http.client
import multiprocessing
import os
import random
import time
from collections.abc import Callable

Fresh = Callable[[bytes, random.Random], bytes]


def _client(port: int, path: str, body: bytes, seconds: float, fresh: Fresh | None, out: multiprocessing.Queue) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json", "Connection": "keep-alive"}
    latencies, errors = [], 0
    rng = random.Random(os.getpid())
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        payload = fresh(body, rng) if fresh else body  # made before the clock starts
        started = time.perf_counter()
        try:
            conn.request("POST", path, body=payload, headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                errors += 1
        except (OSError, http.client.HTTPException):
            errors += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            continue
        latencies.append((time.perf_counter() - started) * 1000)
    conn.close()
    out.put((latencies, errors))


def run_clients(target, args: tuple, concurrency: int, seconds: float) -> tuple[list, float]:
    """Start `concurrency` processes of target(*args, out_queue); their results and the wall time."""
    queue: multiprocessing.Queue = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=target, args=(*args, queue)) for _ in range(concurrency)]
    started = time.perf_counter()
    for p in procs:
        p.start()
    results = [queue.get(timeout=seconds + 60) for _ in procs]
    for p in procs:
        p.join(timeout=10)
    return results, time.perf_counter() - started


def drive(
    port: int, path: str, body: bytes, concurrency: int, seconds: float, fresh: Fresh | None = None
) -> tuple[list[float], int, float]:
    """Latencies (ms) of every request, the error count, and the wall time. `fresh(body, rng)`, when
    given, makes each request's body (a module-level function: it crosses into the client processes)."""
    results, wall = run_clients(_client, (port, path, body, seconds, fresh), concurrency, seconds)
    latencies = [x for lat, _ in results for x in lat]
    return latencies, sum(e for _, e in results), wall
