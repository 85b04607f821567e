"""Unit-safe conversion of lab values into each analyte's canonical unit.

A unit that the labs table does not list is never guessed: conversion returns None and the value
is kept, flagged, so that the card that needed it can say why it was not used.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..knowledge.model import Analyte

UCUM = "http://unitsofmeasure.org"


def ucum_unit(quantity: Mapping[str, object], aliases: Mapping[str, str]) -> str | None:
    """The known UCUM unit of a FHIR Quantity: its UCUM `code` first, then its display `unit`."""
    code, unit = quantity.get("code"), quantity.get("unit")
    return ucum_unit_of(
        quantity.get("system"),
        code if isinstance(code, str) else None,
        unit if isinstance(unit, str) else None,
        aliases,
    )


def ucum_unit_of(system: object, code: str | None, unit: str | None, aliases: Mapping[str, str]) -> str | None:
    """`ucum_unit` from a Quantity's system, code and unit (typed or read from a dict)."""
    for raw in (code if system in (UCUM, None) else None, unit):
        if raw is not None:
            known = aliases.get(raw.lower().replace(" ", ""))
            if known:
                return known
    return None


def to_canonical(value: float, unit: str | None, analyte: Analyte) -> float | None:
    if unit is None:
        return None
    factor = analyte.factors.get(unit)
    return None if factor is None else value * factor
