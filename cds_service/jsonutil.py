"""Reading untrusted FHIR JSON: a field that should be a list is used only when it is one."""

from __future__ import annotations

from typing import Any


def items(value: Any) -> list[Any]:
    """`value` if it is a JSON array, else nothing (a `true` where a list belongs must not crash us)."""
    return value if isinstance(value, list) else []
