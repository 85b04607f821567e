"""Engine benchmark: in-process cost of one order-sign evaluation (protocol + record + rules + cards).

    python bench/engine.py [--quick]

Typical case: 5 draft orders, 20 active medications, 200 Observations; the same about a new patient on
every call ("first sight": ids and timestamps no per-content cache has seen). Every call gets a body
freshly parsed from JSON before its clock starts, as in a server. Growth: Observations 10 ... 10,000
and medications 10 ... 1,000. Cases are measured in interleaved slices, so a slow minute of this
shared machine falls on all of them (the big cases then also disturb the small ones' caches: p95 and
p99 read higher than when each case ran alone).
Prints a table; writes bench/results/engine.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from common import machine, percentile, print_table, write_result
from workload import NOW, first_sight, request

from cds_service import fastjson
from cds_service.config import Settings
from cds_service.record.fhir_types import decode_body
from cds_service.service import CdsService

SERVICE_ID = "magnesium-order-sign"


SLICES = 5  # every case is measured in slices, interleaved with the others: this machine drifts


def timed(service: CdsService, next_body: Callable[[], dict], rounds: int) -> list[float]:
    """Milliseconds of `rounds` calls; each body is made before the clock starts."""
    samples = []
    for _ in range(rounds):
        body = next_body()
        started = time.perf_counter()
        service.call(SERVICE_ID, body)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def peak_kib(service: CdsService, body: dict) -> int:
    tracemalloc.start()
    service.call(SERVICE_ID, body)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return round(peak / 1024)


def run(quick: bool = False) -> dict:
    service = CdsService(Settings(now=NOW))
    gc.collect()
    gc.freeze()  # as `cds-service serve` does once the app is built: the knowledge is not swept per call
    cases = [("typical", 200, 20, 300 if quick else 2000), ("typical, first sight", 200, 20, 300 if quick else 2000)]
    cases += [(f"obs={n}", n, 20, r) for n, r in ((10, 500), (100, 500), (1000, 200), (10000, 30))]
    cases += [(f"meds={m}", 200, m, r) for m, r in ((10, 500), (100, 200), (1000, 30))]
    feeds = {label: _bodies(obs, meds, fresh=label.endswith("first sight")) for label, obs, meds, _ in cases}
    samples: dict[str, list[float]] = {label: [] for label, *_ in cases}
    for label, *_ in cases:
        timed(service, feeds[label], 3)  # warm-up
    for _ in range(SLICES):
        for label, _, _, rounds in cases:
            samples[label] += timed(service, feeds[label], max(4, rounds // (4 if quick else 1) // SLICES))
    rows = []
    for label, observations, medications, _ in cases:
        body = feeds[label]()
        cards = len(service.call(SERVICE_ID, body).response["cards"])
        ms = samples[label]
        rows.append(
            {
                "case": label,
                "observations": observations,
                "medications": medications,
                "cards": cards,
                "median_ms": round(statistics.median(ms), 3),
                "p95_ms": round(percentile(ms, 0.95), 3),
                "p99_ms": round(percentile(ms, 0.99), 3),
                "peak_kib": peak_kib(service, feeds[label]()),
                "rounds": len(ms),
            }
        )
    print_table(rows, ["case", "observations", "medications", "cards", "median_ms", "p95_ms", "p99_ms", "peak_kib"])
    obs_rows = {r["observations"]: r for r in rows if r["case"].startswith("obs=")}
    growth = obs_rows[10000]["median_ms"] / obs_rows[1000]["median_ms"]
    print(f"growth 1,000 -> 10,000 Observations: x{growth:.1f} (linear would be x10)")
    result = {"machine": machine(), "cases": rows, "growth_1k_to_10k": round(growth, 2)}
    write_result(Path(__file__).parent / "results" / "engine.json", result)
    return result


def _bodies(observations: int, medications: int, fresh: bool) -> Callable[[], dict]:
    """Each call's body parsed from JSON, as the server does (untimed): the same bytes every call, or
    (`fresh`) a new patient's."""
    if not fresh:
        raw = json.dumps(request(observations, medications)).encode()
        return lambda: parse(raw)
    marked, rng = json.dumps(request(observations, medications, marked=True)).encode(), random.Random(11)
    return lambda: parse(first_sight(marked, rng))


def parse(raw: bytes) -> dict:
    """As the HTTP view parses a body: decoded once, its Observation bundles typed (fhir_types)."""
    return decode_body(raw) or fastjson.loads(raw)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    run(parser.parse_args().quick)
