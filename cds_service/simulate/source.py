"""The export as it arrives: a folder of Bulk Data NDJSON files (plain or gzip, one resource type per
file, `Medication` often absent) or of FHIR bundles. Read as a stream, one resource at a time, so a
file of any size is read in bounded memory; a line that is not JSON is named by file and line."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson

NDJSON_SUFFIXES = (".ndjson", ".ndjson.gz")
GZIP_EXPANSION = 8  # a gzip NDJSON file holds about this many times its size (for sizing buckets only)


def export_files(source: Path) -> list[Path]:
    """The export's files in a stable order: NDJSON (plain or gzip), then bundles."""
    ndjson = sorted(p for p in source.iterdir() if p.is_file() and p.name.endswith(NDJSON_SUFFIXES))
    bundles = sorted(source.glob("*.json"))
    if not ndjson and not bundles:
        raise FileNotFoundError(
            f"{source}: no .ndjson or .ndjson.gz (Bulk Data export) or .json (FHIR bundle) files"
        )  # fmt: skip
    return ndjson + bundles


def expected_bytes(files: list[Path]) -> int:
    """The export's size as NDJSON, estimated for gzip files: what the buckets are sized from."""
    return sum(p.stat().st_size * (GZIP_EXPANSION if p.name.endswith(".gz") else 1) for p in files)


def read_resources(path: Path) -> Iterator[dict[str, Any]]:
    """Every resource of one file, in order."""
    for line, where in read_lines(path):
        yield parse_object(line, where)
    if not path.name.endswith(NDJSON_SUFFIXES):
        yield from read_bundle(path)


def read_lines(path: Path, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, str]]:
    """The lines of an NDJSON file (plain or gzip), unparsed, each with where it is (file:line, or
    file@byte in a range that does not start the file); none for a bundle. A range [start, end) of a
    plain file holds the lines that begin in it (the one across `end` is read whole)."""
    if not path.name.endswith(NDJSON_SUFFIXES):
        return
    try:
        with _open(path) as lines:
            if start > 0:
                lines.seek(start - 1)
                start += len(lines.readline()) - 1  # the rest of the line that began before the range
            position = start
            for number, line in enumerate(lines, start=1):
                if end is not None and position >= end:
                    return
                if line.strip():
                    yield line, f"{path}:{number}" if start == 0 else f"{path}@byte {position}"
                position += len(line)
    except (OSError, EOFError) as exc:  # a truncated or corrupt gzip file
        raise ValueError(f"{path}: cannot be read ({exc})") from None


def read_bundle(path: Path) -> Iterator[dict[str, Any]]:
    bundle = parse_object(path.read_bytes(), str(path))
    if bundle.get("resourceType") != "Bundle":
        raise ValueError(f"{path}: not a FHIR Bundle (resourceType {bundle.get('resourceType')!r})")
    yield from bundle_resources(bundle)


def _open(path: Path) -> BinaryIO:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def parse_object(text: bytes | str, where: str) -> dict[str, Any]:
    """One JSON object, or a ValueError that names the file and line."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"{where}: not JSON ({exc.msg})") from None
    except (OSError, EOFError) as exc:  # a truncated gzip stream
        raise ValueError(f"{where}: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{where}: not a FHIR resource (a JSON object)")
    return value


def bundle_resources(bundle: dict[str, Any]) -> Iterator[dict[str, Any]]:
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


def patient_of(resource: dict[str, Any]) -> str | None:
    """The patient a resource is about: its id for a Patient, else subject or patient (Patient/x)."""
    if resource.get("resourceType") == "Patient":
        return str(resource.get("id") or "") or None
    for key in ("subject", "patient"):
        ref = resource.get(key)
        if isinstance(ref, dict) and isinstance(ref.get("reference"), str) and ref["reference"].startswith("Patient/"):
            return str(ref["reference"].split("/", 1)[1])
    return None
