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
    candidates = []
    if quantity.get("system") in (UCUM, None) and isinstance(quantity.get("code"), str):
        candidates.append(quantity["code"])
    if isinstance(quantity.get("unit"), str):
        candidates.append(quantity["unit"])
    for raw in candidates:
        known = aliases.get(str(raw).lower().replace(" ", ""))
        if known:
            return known
    return None


def to_canonical(value: float, unit: str | None, analyte: Analyte) -> float | None:
    if unit is None:
        return None
    factor = analyte.factors.get(unit)
    return None if factor is None else value * factor
