"""One patient's history, read once, and the record as it was at any moment of it: labs taken and
conditions recorded before, the encounter an order was written in, and the medications running then,
read as the live service reads them (only a running medication is active)."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from ..record.build import recorded_time
from ..record.dates import parse_datetime
from ..record.dosage import days_of, read_dosage
from ..record.labs import effective_time

ORDER_TYPES = ("MedicationRequest", "MedicationStatement")
# Statuses of a medication that ran at some time; the live service reads only the running ones as
# active (record/build.py): `active` (and a statement's `intended`, `on-hold`) today.
RAN = {
    "MedicationRequest": frozenset({"active", "on-hold", "completed", "stopped"}),
    "MedicationStatement": frozenset({"active", "intended", "on-hold", "completed", "stopped"}),
}
STILL_RUNNING = {"MedicationRequest": frozenset({"active"}), "MedicationStatement": frozenset({"active", "intended"})}
# A stopped or completed medication whose resource states no end (no dosage bounds, supply or
# validity period, no effectivePeriod.end) is taken to have run this long: a common dispensed supply.
# An assumption of the replay, stated in the report; never "active until today".
ASSUMED_COURSE_DAYS = 30


def order_time(resource: Mapping[str, Any]) -> datetime | None:
    """When an order was signed (authoredOn) or a reported medication started (effective[x])."""
    if resource.get("resourceType") == "MedicationRequest":
        return parse_datetime(resource.get("authoredOn"))
    period = resource.get("effectivePeriod")
    start = period.get("start") if isinstance(period, Mapping) else None
    return parse_datetime(resource.get("effectiveDateTime") or start)


def medication_end(resource: Mapping[str, Any], start: datetime) -> datetime | None:
    """When a medication stopped running, from the resource alone; None when it runs on (status
    active and no end stated)."""
    rtype = str(resource.get("resourceType"))
    stated = _stated_end(resource, start)
    if stated is not None:
        return stated
    if resource.get("status") in STILL_RUNNING.get(rtype, ()):
        return None
    return start + timedelta(days=ASSUMED_COURSE_DAYS)


def _stated_end(resource: Mapping[str, Any], start: datetime) -> datetime | None:
    if resource.get("resourceType") == "MedicationStatement":
        period = resource.get("effectivePeriod")
        end = _end_of(period.get("end")) if isinstance(period, Mapping) else None
        if end is not None:
            return end
    dosages = resource.get("dosageInstruction" if resource.get("resourceType") == "MedicationRequest" else "dosage")
    dosage = dosages[0] if isinstance(dosages, list) and dosages and isinstance(dosages[0], Mapping) else {}
    timing = dosage.get("timing")
    repeat = timing.get("repeat") if isinstance(timing, Mapping) else None
    if isinstance(repeat, Mapping):
        bounds = repeat.get("boundsPeriod")
        end = _end_of(bounds.get("end")) if isinstance(bounds, Mapping) else None
        if end is not None:
            return end
        days = read_dosage(dosage).course_days
        if days is not None:
            return start + timedelta(days=days)
    dispense = resource.get("dispenseRequest")
    if isinstance(dispense, Mapping):
        supply = dispense.get("expectedSupplyDuration")
        if isinstance(supply, Mapping) and isinstance(supply.get("value"), int | float):
            unit = supply.get("code") or supply.get("unit")
            repeats = dispense.get("numberOfRepeatsAllowed")
            fills = 1 + (repeats if isinstance(repeats, int) and repeats > 0 else 0)
            days = days_of(float(supply["value"]), unit)
            if days is not None:
                return start + timedelta(days=days * fills)
        validity = dispense.get("validityPeriod")
        end = _end_of(validity.get("end")) if isinstance(validity, Mapping) else None
        if end is not None:
            return end
    return None


def _end_of(value: Any) -> datetime | None:
    """An end date is inclusive: a date alone ends at the end of that day."""
    end = parse_datetime(value)
    return end + timedelta(days=1) if end is not None and len(str(value)) == 10 else end


class History:
    """A patient's resources sorted once by time, so the record at each order is a slice, not a scan."""

    def __init__(self, resources: list[dict[str, Any]]) -> None:
        self.patients = [r for r in resources if r.get("resourceType") == "Patient"]
        observations = []
        self.conditions: list[tuple[datetime | None, datetime | None, dict[str, Any]]] = []
        self.encounters: dict[str, dict[str, Any]] = {}
        self.medications: list[tuple[datetime, datetime | None, dict[str, Any], dict[str, Any]]] = []
        self.orders: list[dict[str, Any]] = []
        self.medication_references: set[str] = set()  # the Medications (shared, not per patient) it names
        for r in resources:
            rtype = r.get("resourceType")
            if rtype == "Observation":
                seen = effective_time(r)  # the time the record reads, so the replay and the rules agree
                if seen is not None:
                    observations.append((seen, r))
            elif rtype == "Condition":
                self.conditions.append((recorded_time(r), parse_datetime(r.get("abatementDateTime")), r))
            elif rtype == "Encounter" and isinstance(r.get("id"), str):
                self.encounters[r["id"]] = r
            elif rtype in ORDER_TYPES and r.get("status") != "entered-in-error":
                self.orders.append(r)
                ref = r.get("medicationReference")
                if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
                    self.medication_references.add("/".join(ref["reference"].rstrip("/").split("/")[-2:]))
                start = order_time(r)
                if start is not None and r.get("status") in RAN[rtype]:
                    self.medications.append((start, medication_end(r, start), r, {**r, "status": "active"}))
        observations.sort(key=lambda item: item[0])
        self.observation_times = [when for when, _ in observations]
        self.observations = [r for _, r in observations]

    def as_of(self, order: Mapping[str, Any], when: datetime) -> list[dict[str, Any]]:
        """The record at `when`: what was known before the order, the medications running then (as
        active), and the encounter the order was written in."""
        out = [*self.patients, *self.observations[: bisect_right(self.observation_times, when)]]
        out += [
            r for start, end, r in self.conditions if (start is None or start <= when) and (end is None or end > when)
        ]
        out += [
            active
            for start, end, r, active in self.medications
            if r is not order and start < when and (end is None or end > when)
        ]
        encounter = self.encounter_of(order)
        if encounter is not None:
            out.append(encounter)
        return out

    def encounter_of(self, order: Mapping[str, Any]) -> dict[str, Any] | None:
        ref = order.get("encounter") or order.get("context")  # R4 MedicationStatement: context
        reference = ref.get("reference") if isinstance(ref, Mapping) else None
        if isinstance(reference, str) and reference.startswith("Encounter/"):
            return self.encounters.get(reference.split("/", 1)[1])
        return None
