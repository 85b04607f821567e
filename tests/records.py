"""A PatientRecord for tests of the clinical layer without HTTP: only what the test gives, nothing else."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from cds_service.record.model import ConditionEntry, LabValue, MedicationEntry, PatientRecord

NOW = datetime(2026, 11, 15, tzinfo=UTC)


def patient_record(
    *orders: MedicationEntry,
    labs: Mapping[str, tuple[LabValue, ...]] | None = None,
    conditions: tuple[ConditionEntry, ...] = (),
    now: datetime = NOW,
) -> PatientRecord:
    """The first order is in scope, the others are drafts of the same signing."""
    return PatientRecord(
        reviewing=False,
        now=now,
        patient_id="p",
        patient_known=True,
        birth_date=None,
        sex="female",
        user_id=None,
        encounter_id=None,
        orders_in_scope=orders[:1],
        other_drafts=orders[1:],
        active_medications=(),
        labs=labs or {},
        conditions=conditions,
    )
