"""The hook contracts in hooks/ (shipped as cds_service.contracts): JSON Schemas and discovery."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import best_match

from .errors import ProtocolError

SCHEMAS = ("request", "response", "feedback", "discovery")


@cache
def contract(name: str) -> Any:
    return json.loads(resources.files("cds_service.contracts").joinpath(name).read_text(encoding="utf-8"))


@cache
def validator(kind: str) -> Draft202012Validator:
    if kind not in SCHEMAS:
        raise KeyError(kind)
    schema = contract(f"{kind}.schema.json")
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


def discovery_document() -> dict[str, Any]:
    return contract("discovery.json")


def validate(kind: str, body: Any) -> None:
    """Raise ProtocolError(400) naming the first offending field (JSON path) and the problem."""
    error = best_match(validator(kind).iter_errors(body))
    if error is None:
        return
    parts = list(error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        parts += [name for name in error.validator_value if name not in error.instance][:1]
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".")
    message = error.message if len(error.message) <= 300 else error.message[:297] + "..."
    raise ProtocolError(400, path or None, message)
