"""JSON on the hot path: orjson first (a 64 KiB hook body parses in a third of the time), the
standard library when orjson refuses. orjson is stricter (no lone surrogates, integers within 64
bits, depth <= 1024, UTF-8 only), so every body it rejects is read or explained by `json`, whose
messages name the line and column: what a client sees never depends on which parser ran."""

from __future__ import annotations

import json
import math
from typing import Any

import orjson


def loads(raw: bytes) -> Any:
    """Parse a body; raises what `json.loads` raises (ValueError, RecursionError) for bad JSON. A number
    no float can hold (1e400) is refused as orjson refuses it, and so are NaN and Infinity (not JSON,
    RFC 8259): the standard parser would read them as inf and nan, which no FHIR value is."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw, parse_constant=_not_a_number, parse_float=_finite)


def _not_a_number(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def dumps(value: Any, default: Any = None) -> bytes:
    """Compact JSON as UTF-8 bytes; a value orjson cannot write (a lone surrogate echoed from a
    request) is written by `json`."""
    try:
        return orjson.dumps(value, default=default)
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(value, separators=(",", ":"), default=default).encode()
