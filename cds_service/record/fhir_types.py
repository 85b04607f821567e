"""The typed FHIR input: the request body decoded once, with the resources a rule reads in bulk as
typed structs of only the fields the service reads (msgspec, C-implemented).

One pass decodes the request's top level and everything in it except the prefetch values, which
are kept raw. A prefetch value that fits the strict shape (today: a search Bundle of Observations,
each field of the type FHIR gives it) is then decoded straight into structs; any other value, and
any bundle in which one entry does not fit (a string where a number belongs, another resource type,
an entry without a resource), is decoded into plain dicts and read by the tolerant dict path exactly
as before. A body msgspec cannot decode at all is left to `fastjson.loads`, so error messages never
change. Measured (callgrind, the typical 86 KiB body): 3.9 M instructions, orjson.loads 4.6 M.

The JSON Schema of the request reads only `resourceType` from each prefetch value, so the body
handed on keeps, for a typed bundle, a `TypedBundle`: a dict holding the bundle's `resourceType`
(what the schema checks) and the decoded structs in `.typed` (what `fhir.gather` reads).
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

# gc=False: decoded JSON holds no reference cycles and these structs are never changed, so the
# collector need not track them (200 Observations are ~1,000 objects a call: 20 % of the decode).


class Quantity(msgspec.Struct, gc=False):
    value: float | None = None
    comparator: str | None = None
    unit: str | None = None
    system: str | None = None
    code: str | None = None


class Period(msgspec.Struct, gc=False):
    start: str | None = None


class ReferenceRange(msgspec.Struct, gc=False):
    low: Quantity | None = None
    high: Quantity | None = None


ABSENT = msgspec.Raw()  # an element the JSON does not have


class Observation(msgspec.Struct, tag_field="resourceType", tag="Observation", gc=False):
    """An Observation as the lab reading (record/labs.py) reads it.

    Its code, value and reference range are kept as their JSON text (`msgspec.Raw`, a slice of the body):
    the code is looked up by that text (a chart's codes repeat), and the value and range are decoded only
    for the few results a rule reads (the newest of each analyte, the recent creatinine and eGFR), by
    `quantity` and `reference_ranges`. An element that does not fit its type then makes that one
    Observation read as dicts, not its bundle."""

    id: str | None = None
    status: str | None = None
    code: msgspec.Raw = ABSENT
    effectiveDateTime: str | None = None
    effectivePeriod: Period | None = None
    issued: str | None = None
    valueQuantity: msgspec.Raw = ABSENT
    referenceRange: msgspec.Raw = ABSENT


class ObservationEntry(msgspec.Struct, gc=False):
    resource: Observation


class ObservationBundle(msgspec.Struct, tag_field="resourceType", tag="Bundle", gc=False):
    entry: list[ObservationEntry] = []


class TypedBundle(dict[str, Any]):
    """A prefetch Bundle decoded into structs: as a dict it shows only its resourceType."""

    __slots__ = ("typed",)

    def __init__(self, typed: ObservationBundle) -> None:
        super().__init__(resourceType="Bundle")
        self.typed = typed


class _HookBody(msgspec.Struct, forbid_unknown_fields=True):
    """The top level of a hook request (hooks/request.schema.json's properties), decoded in the same
    pass as everything in it; each prefetch value kept raw, to be decoded typed or as dicts. A body
    with another field (a feedback body, an extension of the protocol) is decoded generically."""

    hook: Any = UNSET
    hookInstance: Any = UNSET
    fhirServer: Any = UNSET
    fhirAuthorization: Any = UNSET
    context: Any = UNSET
    prefetch: dict[str, msgspec.Raw] | UnsetType | None = UNSET
    extension: Any = UNSET


_HOOK_BODY = msgspec.json.Decoder(_HookBody)
_FIELDS = _HookBody.__struct_fields__
_TOP = msgspec.json.Decoder(dict[str, msgspec.Raw])
_ANY = msgspec.json.Decoder()
_OBSERVATIONS = msgspec.json.Decoder(ObservationBundle)
_QUANTITY = msgspec.json.Decoder(Quantity | None)
_RANGES = msgspec.json.Decoder(list[ReferenceRange] | None)


def decode_body(raw: bytes) -> dict[str, Any] | None:
    """The hook request body as dicts, its Observation bundles typed; None when msgspec cannot
    decode it (the caller then parses it as before, for the same answer or the same error)."""
    try:
        try:
            top = _HOOK_BODY.decode(raw)
        except msgspec.ValidationError:  # not a hook body's shape: every value decoded as it comes
            return _generic(raw)
        body = {name: value for name in _FIELDS if (value := getattr(top, name)) is not UNSET}
        if type(top.prefetch) is dict:
            body["prefetch"] = {key: _value(value) for key, value in top.prefetch.items()}
    except (msgspec.DecodeError, ValueError, RecursionError):
        return None
    return body


def _generic(raw: bytes) -> dict[str, Any] | None:
    """An object of other fields (a prefetch that is not an object included), the prefetch values
    still typed where they fit; None for a body that is not an object (left to the parser of record)."""
    try:
        top = _TOP.decode(raw)
    except msgspec.ValidationError:
        return None
    body = {key: _ANY.decode(value) for key, value in top.items() if key != "prefetch"}
    if "prefetch" in top:
        try:
            values = _TOP.decode(top["prefetch"])
        except msgspec.ValidationError:  # not an object: the schema will say so
            body["prefetch"] = _ANY.decode(top["prefetch"])
        else:
            body["prefetch"] = {key: _value(value) for key, value in values.items()}
    return body


def _value(raw: msgspec.Raw) -> Any:
    """A prefetch value: typed when it is a Bundle of Observations that fits, else dicts. A value
    that never names an Observation is not tried (no typed decode to fail part-way)."""
    if b'"Observation"' in bytes(raw):
        try:
            return TypedBundle(_OBSERVATIONS.decode(raw))
        except msgspec.ValidationError:
            pass
    return _ANY.decode(raw)


def typed_resources(value: Any) -> list[Observation] | None:
    """The typed resources of a prefetch value decoded by `decode_body`, else None."""
    if type(value) is TypedBundle:
        return [entry.resource for entry in value.typed.entry]
    return None


def quantity(raw: msgspec.Raw) -> Quantity | None:
    """An Observation's valueQuantity; msgspec.ValidationError when it is not a Quantity."""
    return _QUANTITY.decode(raw) if raw else None


def reference_ranges(raw: msgspec.Raw) -> list[ReferenceRange]:
    """An Observation's referenceRange; msgspec.ValidationError when it is not a list of ranges."""
    return (_RANGES.decode(raw) or []) if raw else []


def as_json(raw: msgspec.Raw) -> Any:
    """An element kept raw, as plain JSON values (what the dict path reads); None when absent.
    msgspec.ValidationError (a ValueError) when it holds a number out of range."""
    return _ANY.decode(raw) if raw else None
