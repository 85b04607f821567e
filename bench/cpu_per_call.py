"""CPU time of one hook call, the body's parse included, in this process: for A/B runs of two trees.

    PYTHONPATH=<tree> .venv/bin/python bench/cpu_per_call.py typical|first|obs10000 [--cold MB]

Prints the median process CPU milliseconds of parse + `CdsService.call` (600 calls; 30 for
obs10000) after a warm-up, the collector frozen as `serve` does. CPU time, not wall time, so that
other processes on the machine move it less; run the two trees alternately, several times each.
The parse is the HTTP view's (the typed decode where the tree has it, else fastjson).

`--cold MB` reads MB megabytes of other memory before each call (outside the clock), as a served
worker's call follows gunicorn, the other threads and the machine's other processes: 32 empties this
machine's shared L3 cache. A call run back to back keeps its code and tables in the caches, which a
served call does not (bench/README.md, "Ninth pass").
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from workload import NOW, first_sight, request

from cds_service import fastjson
from cds_service.config import Settings
from cds_service.service import CdsService

SERVICE_ID = "magnesium-order-sign"


def _parser() -> Callable[[bytes], Any]:
    try:
        from cds_service.record.fhir_types import decode_body
    except ImportError:  # a tree from before the typed decode
        return fastjson.loads
    return lambda raw: decode_body(raw) or fastjson.loads(raw)


def main(case: str, cold_mb: int = 0) -> None:
    service, parse = CdsService(Settings(now=NOW)), _parser()
    if case == "first":
        marked, rng = json.dumps(request(marked=True)).encode(), random.Random(1)
        raws = [first_sight(marked, rng) for _ in range(700)]
    else:
        raw = json.dumps(request(observations=10000 if case == "obs10000" else 200)).encode()
        raws = [raw] * (40 if case == "obs10000" else 700)
    warm = 10 if case == "obs10000" else 100
    for body in raws[:warm]:
        service.call(SERVICE_ID, parse(body))
    gc.collect()
    gc.freeze()
    samples = []
    other = bytearray(cold_mb * 1024 * 1024)
    for body in raws[warm:]:
        if cold_mb:
            bytes(other)  # a copy reads every cache line of it
        started = time.process_time()
        service.call(SERVICE_ID, parse(body))
        samples.append(time.process_time() - started)
    cold = f", {cold_mb} MB read before each call" if cold_mb else ""
    print(f"{case}: median {statistics.median(samples) * 1000:.3f} ms CPU per call (parse included{cold})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("case", nargs="?", choices=("typical", "first", "obs10000"), default="typical")
    parser.add_argument("--cold", type=int, default=0, metavar="MB", help="read MB of other memory before each call")
    args = parser.parse_args()
    main(args.case, args.cold)
