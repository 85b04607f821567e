"""The export, indexed by patient in a SQLite file on disk: memory stays bounded however large the
export, and every patient's resources come back in one indexed read."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

WANTED = ("Patient", "MedicationRequest", "MedicationStatement", "Observation", "Condition", "Medication")
BATCH = 5000


def stable_shard(patient: str, shards: int) -> int:
    """The shard of a patient: a stable hash, the same on every machine and run."""
    return int.from_bytes(hashlib.sha256(patient.encode()).digest()[:8], "big") % shards


class ExportIndex:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(path)
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS resources (patient TEXT, type TEXT, body TEXT)"
        )  # fmt: skip
        self.db.execute("CREATE TABLE IF NOT EXISTS shared (ref TEXT PRIMARY KEY, body TEXT)")  # Medications

    def load(self, source: Path) -> dict[str, int]:
        """Read every NDJSON file (Bulk Data: one resource type per file) or FHIR bundle in `source`."""
        counts: dict[str, int] = {}
        rows: list[tuple[str, str, str]] = []
        for resource in _resources(source):
            rtype = resource.get("resourceType")
            if rtype not in WANTED:
                continue
            counts[rtype] = counts.get(rtype, 0) + 1
            if rtype == "Medication":
                ref = f"Medication/{resource.get('id')}"
                self.db.execute("INSERT OR REPLACE INTO shared VALUES (?, ?)", (ref, json.dumps(resource)))
                continue
            patient = _patient_of(resource)
            if patient:
                rows.append((patient, rtype, json.dumps(resource)))
            if len(rows) >= BATCH:
                self.db.executemany("INSERT INTO resources VALUES (?, ?, ?)", rows)
                rows.clear()
        self.db.executemany("INSERT INTO resources VALUES (?, ?, ?)", rows)
        self.db.execute("CREATE INDEX IF NOT EXISTS ix_patient ON resources (patient)")
        self.db.commit()
        return counts

    def patients(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT DISTINCT patient FROM resources ORDER BY patient")]

    def orders_per_patient(self, types: tuple[str, ...]) -> dict[str, int]:
        marks = ",".join("?" * len(types))
        query = f"SELECT patient, COUNT(*) FROM resources WHERE type IN ({marks}) GROUP BY patient"
        return dict(self.db.execute(query, types).fetchall())

    def resources_of(self, patient: str) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT body FROM resources WHERE patient = ?", (patient,))
        return [json.loads(body) for (body,) in rows]

    def medications(self) -> dict[str, dict[str, Any]]:
        return {ref: json.loads(body) for ref, body in self.db.execute("SELECT ref, body FROM shared")}

    def close(self) -> None:
        self.db.close()


def _resources(source: Path) -> Iterator[dict[str, Any]]:
    files = sorted(source.glob("*.ndjson")) + sorted(source.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"{source}: no .ndjson (Bulk Data export) or .json (FHIR bundle) files")
    for path in files:
        if path.suffix == ".ndjson":
            with path.open(encoding="utf-8") as lines:
                for number, line in enumerate(lines, start=1):
                    if line.strip():
                        yield _object(line, f"{path}:{number}")
        else:
            bundle = _object(path.read_text(encoding="utf-8"), str(path))
            if bundle.get("resourceType") != "Bundle":
                raise ValueError(f"{path}: not a FHIR Bundle (resourceType {bundle.get('resourceType')!r})")
            yield from _bundle_resources(bundle)


def _object(text: str, where: str) -> dict[str, Any]:
    """One JSON object, or a ValueError that names the file and line."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{where}: not JSON ({getattr(exc, 'msg', exc)})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{where}: not a FHIR resource (a JSON object)")
    return value


def _bundle_resources(bundle: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A bundle's resources, with urn:uuid references rewritten to Type/id (ids given where missing)."""
    entries = [e for e in bundle.get("entry") or [] if isinstance(e, dict) and isinstance(e.get("resource"), dict)]
    names = {}
    for i, entry in enumerate(entries):
        resource = entry["resource"]
        resource.setdefault("id", str(entry.get("fullUrl", f"entry-{i}")).rsplit(":", 1)[-1].rsplit("/", 1)[-1])
        if entry.get("fullUrl"):
            names[entry["fullUrl"]] = f"{resource['resourceType']}/{resource['id']}"
    for entry in entries:
        text = json.dumps(entry["resource"])
        for urn, ref in names.items():
            text = text.replace(f'"{urn}"', f'"{ref}"')
        yield json.loads(text)


def _patient_of(resource: dict[str, Any]) -> str | None:
    if resource.get("resourceType") == "Patient":
        return str(resource.get("id") or "") or None
    for key in ("subject", "patient"):
        ref = resource.get(key)
        if isinstance(ref, dict) and isinstance(ref.get("reference"), str) and ref["reference"].startswith("Patient/"):
            return ref["reference"].split("/", 1)[1]
    return None
