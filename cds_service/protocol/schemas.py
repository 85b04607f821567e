"""The hook contracts in hooks/ (installed as cds_service.hooks): JSON Schemas and discovery.

Every request is checked by a compiled validator (jsonschema-rs, microseconds); only a body it
rejects goes through the reference `jsonschema` validator, whose best match names the field.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from importlib import resources
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import best_match

from .errors import ProtocolError

SCHEMAS = ("request", "response", "feedback", "discovery")


@cache
def contract(name: str) -> Any:
    return json.loads(resources.files("cds_service.hooks").joinpath(name).read_text(encoding="utf-8"))


@cache
def validator(kind: str) -> Draft202012Validator:
    if kind not in SCHEMAS:
        raise KeyError(kind)
    schema = contract(f"{kind}.schema.json")
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


@cache
def fast_validator(kind: str) -> Any:
    validator(kind)  # the reference validator checks the schema itself first
    return jsonschema_rs.validator_for(contract(f"{kind}.schema.json"), validate_formats=True)


def discovery_document() -> dict[str, Any]:
    """The shipped discovery document (generated from the service registry: tests/test_services.py)."""
    document: dict[str, Any] = contract("discovery.json")
    return document


def validate(kind: str, body: Any) -> None:
    """Raise ProtocolError(400) naming the first offending field (JSON path) and the problem."""
    if fast_validator(kind).is_valid(body):
        return
    error = best_match(validator(kind).iter_errors(body))
    if error is None:  # only the compiled validator objects (e.g. a format): report its first error
        fast_error = next(iter(fast_validator(kind).iter_errors(body)))
        raise ProtocolError(400, _json_path(fast_error.instance_path), fast_error.message[:300])
    parts = list(error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        parts += [name for name in error.validator_value if name not in error.instance][:1]
    path = _json_path(parts)
    message = error.message if len(error.message) <= 300 else error.message[:297] + "..."
    raise ProtocolError(400, path or None, message)


def _json_path(parts: Iterable[str | int]) -> str | None:
    """context.selections[0] style, as the error names the field."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".") or None
