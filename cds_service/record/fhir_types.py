"""The typed FHIR input: the request body decoded once, with the resources a rule reads in bulk as
typed structs of only the fields the service reads (msgspec, C-implemented).

A prefetch value that fits the strict shape (today: a search Bundle of Observations, each field of
the type FHIR gives it) is decoded straight into structs; any other value, and any bundle in which
one entry does not fit (a string where a number belongs, another resource type, an entry without a
resource), is decoded into plain dicts and read by the tolerant dict path exactly as before. A body
msgspec cannot decode at all is left to `fastjson.loads`, so error messages never change.

The JSON Schema of the request reads only `resourceType` from each prefetch value, so the body
handed on keeps, for a typed bundle, a `TypedBundle`: a dict holding the bundle's `resourceType`
(what the schema checks) and the decoded structs in `.typed` (what `fhir.gather` reads).
"""

from __future__ import annotations

from typing import Any

import msgspec


class Coding(msgspec.Struct):
    system: str | None = None
    code: str | None = None
    display: str | None = None


class CodeableConcept(msgspec.Struct):
    coding: list[Coding] = []
    text: str | None = None


class Quantity(msgspec.Struct):
    value: float | None = None
    comparator: str | None = None
    unit: str | None = None
    system: str | None = None
    code: str | None = None


class Period(msgspec.Struct):
    start: str | None = None


class ReferenceRange(msgspec.Struct):
    low: Quantity | None = None
    high: Quantity | None = None


class Observation(msgspec.Struct, tag_field="resourceType", tag="Observation"):
    """An Observation as the lab reading (record/labs.py) reads it."""

    id: str | None = None
    status: str | None = None
    code: CodeableConcept | None = None
    effectiveDateTime: str | None = None
    effectivePeriod: Period | None = None
    issued: str | None = None
    valueQuantity: Quantity | None = None
    referenceRange: list[ReferenceRange] = []


class ObservationEntry(msgspec.Struct):
    resource: Observation


class ObservationBundle(msgspec.Struct, tag_field="resourceType", tag="Bundle"):
    entry: list[ObservationEntry] = []


class TypedBundle(dict[str, Any]):
    """A prefetch Bundle decoded into structs: as a dict it shows only its resourceType."""

    __slots__ = ("typed",)

    def __init__(self, typed: ObservationBundle) -> None:
        super().__init__(resourceType="Bundle")
        self.typed = typed


_TOP = msgspec.json.Decoder(dict[str, msgspec.Raw])
_ANY = msgspec.json.Decoder()
_OBSERVATIONS = msgspec.json.Decoder(ObservationBundle)


def decode_body(raw: bytes) -> dict[str, Any] | None:
    """The hook request body as dicts, its Observation bundles typed; None when msgspec cannot
    decode it (the caller then parses it as before, for the same answer or the same error)."""
    try:
        top = _TOP.decode(raw)
        body = {key: _ANY.decode(value) for key, value in top.items() if key != "prefetch"}
        prefetch = top.get("prefetch")
        if prefetch is not None:
            body["prefetch"] = _prefetch(prefetch)
    except (msgspec.DecodeError, ValueError, RecursionError):
        return None
    return body


def _prefetch(raw: msgspec.Raw) -> Any:
    try:
        values = _TOP.decode(raw)
    except msgspec.ValidationError:  # not an object: the schema will say so
        return _ANY.decode(raw)
    return {key: _value(value) for key, value in values.items()}


def _value(raw: msgspec.Raw) -> Any:
    try:
        return TypedBundle(_OBSERVATIONS.decode(raw))
    except msgspec.ValidationError:
        return _ANY.decode(raw)


def typed_resources(value: Any) -> list[Observation] | None:
    """The typed resources of a prefetch value decoded by `decode_body`, else None."""
    if type(value) is TypedBundle:
        return [entry.resource for entry in value.typed.entry]
    return None
