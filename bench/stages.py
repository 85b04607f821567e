"""Process CPU of each stage of a typical hook call, each stage alone on the inputs the previous one made.

    .venv/bin/python bench/stages.py [--rounds 3] [--calls 300]

Stages as bench/instructions.py names them: parse (the body's bytes, as the HTTP view decodes them),
call (the whole `CdsService.call`), request, gather, record, engine, cards. Prints the best round's
median microseconds per stage. A stage run alone keeps its working set in the CPU's caches, so the
stages add up to less than `call`; compare a stage with itself across trees (`PYTHONPATH=<tree>`),
run alternately, and read bench/instructions.py for counts that load does not move.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from collections.abc import Callable

from workload import NOW, request

from cds_service import fastjson
from cds_service.config import Settings
from cds_service.fhir.gather import gather
from cds_service.protocol.request import parse_request
from cds_service.record import build_record
from cds_service.record.fhir_types import decode_body
from cds_service.service import CdsService

SERVICE_ID = "magnesium-order-sign"


def stages() -> dict[str, Callable[[], object]]:
    service = CdsService(Settings(now=NOW))
    raw = json.dumps(request()).encode()
    body = decode_body(raw) or fastjson.loads(raw)
    service.call(SERVICE_ID, body)  # every lazy table and memory loaded
    hooks = service.service(SERVICE_ID).hooks
    parsed = parse_request(body, SERVICE_ID, hooks)
    data = gather(parsed, service.registry.prefetch, service.settings.fhir, None, None)
    record = build_record(parsed, data.resources, data.gaps, service.knowledge, NOW)
    findings = service.engine.evaluate(record)
    client = service.settings.client(None)
    return {
        "parse": lambda: decode_body(raw) or fastjson.loads(raw),
        "call": lambda: service.call(SERVICE_ID, body),
        "request": lambda: parse_request(body, SERVICE_ID, hooks),
        "gather": lambda: gather(parsed, service.registry.prefetch, service.settings.fhir, None, None),
        "record": lambda: build_record(parsed, data.resources, data.gaps, service.knowledge, NOW),
        "engine": lambda: service.engine.evaluate(record),
        "cards": lambda: service.cards.cards(findings, record, client, "http://localhost"),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    measured = stages()
    gc.collect()
    gc.freeze()  # as `serve` does
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, stage in measured.items():
            samples = []
            for _ in range(args.calls):
                started = time.process_time()
                stage()
                samples.append(time.process_time() - started)
            median = statistics.median(samples) * 1e6
            best[name] = min(best.get(name, median), median)
    print("  ".join(f"{name} {us:.0f}" for name, us in best.items()), "(us of CPU, best round's median)")


if __name__ == "__main__":
    main()
