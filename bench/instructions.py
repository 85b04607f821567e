"""Instructions per call and per stage, counted by valgrind (callgrind), not timed: this shared
machine's speed moves 2x within minutes, instruction counts do not.

    .venv/bin/python bench/instructions.py [--calls 10] [--case typical|first|obs10000]

For each stage it runs one process under `valgrind --tool=callgrind` that does the stage `--calls`
times and one that does it 0 times, and prints the difference per call (start-up and knowledge
loading cancel out). Stages: parse (the body's bytes to what the service reads, as the HTTP view
parses it), call (the whole
`CdsService.call`), gather, record, engine, cards (each on the inputs the previous stage made).
Two more, not in the default list, count a whole served call outside the engine, as bench/budget.py
times it: `served` (a post through Flask's test client to the real app at the production log level,
with `CdsService.call` answering the response it gave once, its card rows written by the recorder's
thread before the count ends) and `baseline` (the same post to bench/baseline_app.py):
`--stages served,baseline`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

STAGES = ("parse", "call", "gather", "record", "engine", "cards")
HTTP_STAGES = ("served", "baseline")
SERVICE_ID = "magnesium-order-sign"


def _body(case: str) -> bytes:
    from workload import first_sight, request

    if case == "first":
        return first_sight(json.dumps(request(marked=True)).encode(), random.Random(3))
    if case == "obs10000":
        return json.dumps(request(observations=10000)).encode()
    return json.dumps(request()).encode()


def drive(stage: str, calls: int, case: str) -> None:
    """Inside valgrind: prepare, then run one stage `calls` times (fresh bodies for first sight)."""
    if stage in HTTP_STAGES:
        drive_http(stage, calls, case)
        return
    from workload import NOW

    from cds_service import fastjson
    from cds_service.config import Settings
    from cds_service.fhir.gather import gather
    from cds_service.fhir.templates import templates_for
    from cds_service.protocol.request import parse_request
    from cds_service.record import build_record
    from cds_service.service import CdsService

    service = CdsService(Settings(now=NOW))
    bodies = [_body(case) if case != "first" else None for _ in range(1)]
    if case == "first":
        from workload import first_sight, request

        marked, rng = json.dumps(request(marked=True)).encode(), random.Random(5)
        raws = [first_sight(marked, rng) for _ in range(calls + 1)]
    else:
        raws = [bodies[0] for _ in range(calls + 1)]  # type: ignore[misc]
    try:  # what the HTTP view parses with: the typed decode where the tree has it
        from cds_service.record.fhir_types import decode_body
    except ImportError:

        def decode_body(raw: bytes) -> Any:
            return None

    def parse(raw: bytes) -> Any:
        return decode_body(raw) or fastjson.loads(raw)

    parsed = [parse(raw) for raw in raws]
    service.call(SERVICE_ID, fastjson.loads(raws[-1]))  # warm: every lazy table and cache loaded
    if hasattr(service, "registry"):  # the service registry (issue 25) and typed settings sections
        request = parse_request(parsed[0], SERVICE_ID, service.service(SERVICE_ID).hooks)
        templates, fhir = service.registry.prefetch, service.settings.fhir
    else:  # an older tree, for A/B runs
        request = parse_request(parsed[0], SERVICE_ID, service.hooks[SERVICE_ID])
        templates = templates_for(service.discovery, service.listed_id(request.hook), request.hook)
        fhir = service.settings
    data = gather(request, templates, fhir, None, None)
    record = build_record(request, data.resources, data.gaps, service.knowledge, NOW)
    findings = service.engine.evaluate(record)
    client = service.settings.client(None)
    for i in range(calls):
        if stage == "parse":
            parse(raws[i])
        elif stage == "call":
            service.call(SERVICE_ID, parsed[i])
        elif stage == "gather":
            gather(request, templates, fhir, None, None)
        elif stage == "record":
            build_record(request, data.resources, data.gaps, service.knowledge, NOW)
        elif stage == "engine":
            service.engine.evaluate(record)
        elif stage == "cards":
            service.cards.cards(findings, record, client, "http://localhost")


def drive_http(stage: str, calls: int, case: str) -> None:
    """A served call through Flask's test client: the real app with its engine free, or the baseline."""
    import logging.config

    from workload import NOW

    from cds_service import fastjson
    from cds_service.app import create_app
    from cds_service.config import Settings, StoreSettings
    from cds_service.logs import logging_config

    raw = _body(case)
    path = f"/cds-services/{SERVICE_ID}"
    with tempfile.TemporaryDirectory() as tmp:
        if stage == "baseline":
            import baseline_app

            client = baseline_app.app.test_client()
            recorder = None
        else:
            sys.stderr = open(os.path.join(tmp, "service.log"), "w")  # noqa: SIM115 (the log line, written)
            logging.config.dictConfig(logging_config("INFO"))
            app = create_app(Settings(now=NOW, store=StoreSettings(data_dir=Path(tmp))))
            service = app.extensions["cds_service"]
            answer = service.call(SERVICE_ID, fastjson.loads(raw), base_url="http://localhost")
            service.call = lambda *args, **kwargs: answer
            client, recorder = app.test_client(), app.extensions["card_recorder"]
        for _ in range(2):  # warm: lazy imports, the first metric children, the recorder's thread
            client.post(path, data=raw, content_type="application/json")
        if recorder is not None:
            recorder.flush()
        for _ in range(calls):
            client.post(path, data=raw, content_type="application/json")
        if recorder is not None:
            recorder.flush()  # the rows written: the writer's share of the call counted too
            recorder.close()


def _count(stage: str, calls: int, case: str) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, __file__]
        cmd += ["--drive", stage, "--calls", str(calls), "--case", case]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        subprocess.run(cmd, check=True, capture_output=True, env=env)
        text = Path(out).read_text(errors="replace")
    match = re.search(r"^summary:\s+(\d+)", text, re.M) or re.search(r"^totals:\s+(\d+)", text, re.M)
    if match is None:
        raise RuntimeError("no callgrind summary")
    return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--case", default="typical", choices=("typical", "first", "obs10000"))
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--drive")
    args = parser.parse_args()
    if args.drive:
        drive(args.drive, args.calls, args.case)
        return
    result: dict[str, Any] = {"case": args.case, "calls": args.calls}
    for stage in args.stages.split(","):
        per_call = (_count(stage, args.calls, args.case) - _count(stage, 0, args.case)) / args.calls
        result[stage] = round(per_call / 1e6, 2)
        print(f"{args.case:10} {stage:8} {per_call / 1e6:8.2f} M instructions per call", flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
