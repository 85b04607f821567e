"""The patient record: one typed, normalised view of everything the rules may read.

Built once per request from raw FHIR JSON; the clinical layer reads only this, never JSON or HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from datetime import date, datetime, timedelta
from typing import Any, Literal

from ..immutable import immutable
from .dates import age_in_years, day
from .dosage import Dosage


@immutable
class Coding:
    system: str | None
    code: str | None
    display: str | None = None


@immutable
class LabValue:
    """One lab result. `value` is in the analyte's canonical unit, or None when the unit is unknown."""

    analyte: str
    code: str
    reference: str
    when: datetime
    value: float | None
    unit: str
    original_value: float
    original_unit: str
    comparator: str | None = None
    ref_low: float | None = None
    ref_high: float | None = None

    @property
    def usable(self) -> bool:
        return self.value is not None

    def shown(self) -> str:
        """As the lab reported it, with its record entry (for the card's explanation):
        '256 umol/L on 2026-11-01 (Observation/x)'."""
        shown = f"{self.comparator or ''}{_num(self.original_value)} {self.original_unit}"
        return f"{shown} on {self.when.date().isoformat()} ({self.reference})"

    def reported(self) -> str:
        """The value and unit as the lab reported them: '<0.5 mg/dL'."""
        return f"{self.comparator or ''}{_num(self.original_value)} {self.original_unit}"

    def stated(self) -> str:
        """As a clinician reads it on a card: '256 umol/L on 1 Nov 2026' (no record ids)."""
        return f"{self.reported()} on {day(self.when)}"


@immutable
class MedicationEntry:
    """A MedicationRequest or MedicationStatement, with its medication resolved to names and codes."""

    reference: str
    resource_type: str
    origin: Literal["draft", "active"]
    status: str | None
    name: str
    codings: tuple[Coding, ...]
    ingredient_codings: tuple[Coding, ...]
    ingredient_names: tuple[str, ...]
    route_codings: tuple[Coding, ...]
    route_text: str
    authored_on: datetime | None
    # The order as sent: echoed back, edited, in an update suggestion; never read by a rule.
    resource: Mapping[str, Any] = field(repr=False, compare=False, hash=False)
    strengths: tuple[tuple[str, float, str], ...] = ()  # (ingredient, amount per unit, unit) from Medication
    dosage: Dosage | None = None  # the first dosage instruction (MedicationRequest) or dosage (MedicationStatement)
    form_text: str = ""  # Medication.form of a contained Medication (a referenced one is named in `name`)
    category_codings: tuple[Coding, ...] = ()  # MedicationRequest.category: inpatient, outpatient, ...
    reasons: tuple[ConditionEntry, ...] = ()  # reasonCode, each read as a condition named on the order
    prior_prescription: str | None = None  # the reference of the order this one renews
    # What the order says about its drug, dose and route (record/medications.py MEANING_ELEMENTS and its
    # Medication) as JSON: equal for equal orders, whoever they are for; b"" when unknown. A key, never read.
    content: bytes = field(default=b"", repr=False, compare=False)

    @classmethod
    def named(cls, name: str, codings: tuple[Coding, ...] = (), ingredients: tuple[str, ...] = ()) -> MedicationEntry:
        """An order known only by its name (and codes): for tools and tests that read names."""
        return cls(
            reference="MedicationRequest/named",
            resource_type="MedicationRequest",
            origin="draft",
            status="draft",
            name=name,
            codings=codings,
            ingredient_codings=(),
            ingredient_names=ingredients,
            route_codings=(),
            route_text="",
            authored_on=None,
            resource={},
        )

    @property
    def has_id(self) -> bool:
        """Only an order with an id can be the target of a delete or update suggestion."""
        return "(no id" not in self.reference


@immutable
class ConditionEntry:
    reference: str
    codings: tuple[Coding, ...]
    text: str
    recorded: datetime | None = None  # recordedDate, else onsetDateTime: how fresh the problem-list entry is

    @property
    def label(self) -> str:
        return self.text or next((c.display for c in self.codings if c.display), "") or self.reference


@immutable
class DataGap:
    """Data that could not be obtained: which part of the record and why (shown on cards)."""

    topic: str
    reason: str


@immutable
class PatientRecord:
    reviewing: bool  # the chart opened (patient-view): the therapy running is judged, nothing is being ordered
    now: datetime
    patient_id: str
    patient_known: bool
    birth_date: date | None
    sex: str | None
    user_id: str | None
    encounter_id: str | None
    orders_in_scope: tuple[MedicationEntry, ...]
    other_drafts: tuple[MedicationEntry, ...]
    active_medications: tuple[MedicationEntry, ...]
    labs: Mapping[str, tuple[LabValue, ...]]
    conditions: tuple[ConditionEntry, ...]
    gaps: tuple[DataGap, ...] = ()
    draft_lab_orders: frozenset[str] = frozenset()  # analytes already ordered in this session
    encounter_class: Coding | None = None  # Encounter.class of the hook's encounter, when the EHR gave it

    def series(self, analyte: str) -> tuple[LabValue, ...]:
        """All results for an analyte, newest first (unit-unknown values included, flagged)."""
        return self.labs.get(analyte, ())

    def latest(self, analyte: str, within_days: float | None = None) -> LabValue | None:
        """The newest result, or None when there is none (within the lookback, if given)."""
        for lab in self.series(analyte):
            if within_days is None or lab.when >= self.now - timedelta(days=within_days):
                return lab
            return None
        return None

    def gap(self, topic: str) -> DataGap | None:
        return next((g for g in self.gaps if g.topic == topic), None)

    def age_at(self, when: datetime) -> float | None:
        return age_in_years(self.birth_date, when.date()) if self.birth_date else None


def _num(value: float) -> str:
    return f"{value:g}"
