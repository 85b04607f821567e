"""The steps of one hook call that decide what is said, whoever calls: the HTTP view and
`cds-service evaluate` (through CdsService) and `cds-service simulate` (simulate/replay.py).

relevance (from the request alone) -> record -> rules (gating inside the engine) -> silent rules
apart. Fetching data, building card text, card memory and recording are the caller's: the replay
counts findings and needs none of them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from .clinical.engine import RuleEngine
from .clinical.findings import Finding
from .clinical.relevance import may_concern_a_rule
from .knowledge.model import Knowledge
from .protocol.request import HookRequest
from .protocol.services import Hook
from .record import build_record
from .record.fhir_types import Observation
from .record.model import DataGap, PatientRecord

SILENT = "silent"  # a rule's mode (knowledge/rules.yaml)
T = TypeVar("T")


class Pipeline:
    """One configuration's rules: its knowledge, its engine, and whether every rule is silent."""

    def __init__(self, knowledge: Knowledge, silent: bool = False) -> None:
        self.knowledge = knowledge
        self.engine = RuleEngine(knowledge)
        self.silent = silent

    def concerns(self, request: HookRequest, hook: Hook) -> bool:
        """False when the drafted orders are read and none is one a rule speaks about: answered at once,
        no prefetch resolved, no FHIR call, no record."""
        return not hook.orders_drafted or may_concern_a_rule(request, self.engine)

    def record(
        self,
        request: HookRequest,
        resources: Iterable[Mapping[str, Any] | Observation],
        gaps: Sequence[DataGap],
        now: datetime,
    ) -> PatientRecord:
        return build_record(request, resources, gaps, self.knowledge, now)

    def findings(self, record: PatientRecord, gated: Counter[str] | None = None) -> list[Finding]:
        """The findings of every rule the gating lets speak (`gated` counts, per rule, those it held back)."""
        return self.engine.evaluate(record, gated)

    def is_silent(self, finding: Finding) -> bool:
        """Silent rules (or a silent service) are evaluated and recorded, never returned: shadow mode."""
        return self.silent or self.knowledge.rule(finding.rule_id).mode == SILENT

    def apart(self, items: list[T], finding_of: Callable[[T], Finding]) -> tuple[list[T], list[T]]:
        """(to return, silent), each in its order."""
        live: list[T] = []
        silent: list[T] = []
        for item in items:
            (silent if self.is_silent(finding_of(item)) else live).append(item)
        return live, silent
