"""Every golden request's response, for checking that a speed change changed no answer.

    PYTHONPATH=<tree> .venv/bin/python bench/answers.py [--typed] > answers.json

Runs each `fixtures/scenarios/*/request.*.json` through `CdsService.call` of the tree on the path (the
scenarios' clock, no FHIR server) and prints one JSON object: request file -> response, card and
suggestion uuids masked. `--typed` decodes each body as the HTTP view does (record/fhir_types.py)
instead of with the standard parser. Run it for two trees and compare the files (`cmp`); issue 29's
steps were each kept only when the files were identical.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cds_service.config import Settings
from cds_service.service import CdsService

SCENARIOS = Path(__file__).resolve().parents[1] / "fixtures" / "scenarios"
NOW = datetime(2026, 11, 15, 12, tzinfo=UTC)  # the scenarios' clock (tests/test_scenarios.py)
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--typed", action="store_true", help="decode as the HTTP view does")
    args = parser.parse_args()
    service = CdsService(Settings(now=NOW))
    out: dict[str, str] = {}
    for path in sorted(SCENARIOS.glob("*/request.*.json")):
        raw = path.read_bytes()
        body: Any = json.loads(raw)
        if args.typed:
            from cds_service.record.fhir_types import decode_body

            body = decode_body(raw) or body
        service_id = service.listed_id(path.stem.removeprefix("request."))  # the hook's service
        try:
            text = json.dumps(service.call(service_id, body, base_url="http://localhost").response, sort_keys=True)
        except Exception as exc:  # an error is an answer too: the same error on both trees
            text = f"error {type(exc).__name__}: {exc}"
        out[str(path.relative_to(SCENARIOS))] = UUID.sub("<uuid>", text)
    json.dump(out, sys.stdout, indent=0, sort_keys=True)
    print(f"{len(out)} requests", file=sys.stderr)


if __name__ == "__main__":
    main()
