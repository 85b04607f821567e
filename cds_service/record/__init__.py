"""The patient record: a typed, normalised view of the request and its FHIR data."""

from .build import build_record
from .model import Coding, ConditionEntry, DataGap, LabValue, MedicationEntry, PatientRecord

__all__ = ["Coding", "ConditionEntry", "DataGap", "LabValue", "MedicationEntry", "PatientRecord", "build_record"]
