"""A CDS Hooks 2.0 card as typed, immutable values (`@immutable`), and the finding it was issued for.

Cards are built once by the builder, pass through silent mode, card memory and the recorder as
these values, and become JSON only at the edge (the HTTP view, `cds-service evaluate`): `as_json`.
The JSON keeps the order of the CDS Hooks specification's card table.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from ..clinical.findings import Finding
from ..immutable import immutable


class Indicator(StrEnum):
    """How urgent a card is (CDS Hooks 2.0 `indicator`)."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@immutable
class Coding:
    system: str
    code: str
    display: str

    def as_json(self) -> dict[str, str]:
        return {"code": self.code, "system": self.system, "display": self.display}


@immutable
class Link:
    label: str
    url: str
    type: str = "absolute"

    def as_json(self) -> dict[str, str]:
        return {"label": self.label, "url": self.url, "type": self.type}


@immutable
class Source:
    label: str
    topic: Coding | None = None  # the rule: its id is the code
    url: str | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"label": self.label}
        if self.topic is not None:
            out["topic"] = {"system": self.topic.system, "code": self.topic.code, "display": self.topic.display}
        if self.url:
            out["url"] = self.url
        return out


@immutable
class Action:
    type: str  # create | update | delete
    description: str
    resource_id: str | None = None  # delete: the order's reference
    resource: Mapping[str, Any] | None = None  # create, update: the FHIR resource (JSON as built)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "description": self.description}
        if self.resource_id is not None:
            out["resourceId"] = self.resource_id
        if self.resource is not None:
            out["resource"] = self.resource
        return out


@immutable
class Suggestion:
    label: str
    uuid: str
    recommended: bool = False
    actions: tuple[Action, ...] = ()

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"label": self.label, "uuid": self.uuid}
        if self.recommended:
            out["isRecommended"] = True
        if self.actions:
            out["actions"] = [a.as_json() for a in self.actions]
        return out


@immutable
class Card:
    uuid: str
    summary: str
    indicator: Indicator
    detail: str
    source: Source
    suggestions: tuple[Suggestion, ...] = ()
    override_reasons: tuple[Coding, ...] = ()
    links: tuple[Link, ...] = ()
    extension: Mapping[str, Any] | None = None  # JSON as built (the explanation)

    @property
    def rule_id(self) -> str | None:
        """The rule that raised it; None for the service's own notes (card memory's info card)."""
        return self.source.topic.code if self.source.topic is not None else None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "uuid": self.uuid,
            "summary": self.summary,
            "indicator": self.indicator.value,
            "detail": self.detail,
            "source": self.source.as_json(),
        }
        if self.suggestions:
            out["suggestions"] = [s.as_json() for s in self.suggestions]
            out["selectionBehavior"] = "at-most-one" if len(self.suggestions) == 1 else "any"
        if self.override_reasons:
            out["overrideReasons"] = [r.as_json() for r in self.override_reasons]
        if self.links:
            out["links"] = [link.as_json() for link in self.links]
        if self.extension is not None:
            out["extension"] = dict(self.extension)
        return out


@immutable
class IssuedCard:
    """A finding and the card issued for it, carried together from the builder to the edge."""

    finding: Finding
    card: Card

    @property
    def rule_id(self) -> str:
        return self.finding.rule_id


class HeldBack(StrEnum):
    """Why a card the rules raised was kept from the EHR (recorded and counted under this name)."""

    SILENT = "silent"  # a silent rule or a silent service: shadow mode
    SHOWN_AT_SELECT = "shown-at-select"  # card memory: shown at order-select, not repeated at order-sign
    SNOOZED = "snoozed"  # card memory: overridden with a snooze reason


@immutable
class Held:
    """A card the rules raised that was kept from the EHR, and why."""

    issued: IssuedCard
    reason: HeldBack
