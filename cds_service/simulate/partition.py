"""Partition an export once: one streaming pass that writes each patient's resources to the shard its
stable hash picks, so that each shard's replay reads 1/N of the data, never the whole export.

Hash partitioning with bounded buffers (the first phase of a Grace hash join): each shard is split
into buckets of bounded size, so a replay holds one bucket's bytes at a time, however large the
export. Only what a rule reads is kept (Patient, MedicationRequest, MedicationStatement, Condition,
Encounter, the Observations of analytes some rule reads, Medication); `manifest.json` counts what
was read, kept and skipped, per shard and per bucket, so the replay and the merge check nothing was
lost.

Bucket files are lines of `<patient as a JSON string>\\t<resource JSON>`: a bucket is grouped by
patient without parsing a resource."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import re
import shutil
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from ..knowledge.model import LOINC, Knowledge
from ..record.dates import parse_datetime
from ..record.labs import effective_time
from .source import NDJSON_SUFFIXES, expected_bytes, export_files, parse_object, patient_of, read_bundle, read_lines

MANIFEST = "manifest.json"
FORMAT = "mg-cds-partition/1"
PATIENT_TYPES = frozenset(
    {"Patient", "MedicationRequest", "MedicationStatement", "Observation", "Condition", "Encounter"}
)
# Medication resources belong to no patient: each writer keeps them in its own SQLite file keyed by
# reference, and a replay looks up only those its patients' orders name (an EHR may export one per order).
SHARED_FILE = "medications"
BUCKET_EXPORT_BYTES = 64 * 2**20  # of the export per bucket (most of an export is Observations no rule reads)
MAX_OPEN_FILES = 512
TYPE_OF = re.compile(rb'"resourceType"\s*:\s*"([A-Za-z]+)"')
CODE = re.compile(rb'"code"\s*:\s*"([^"]*)"')  # every coding's code: a rule's LOINC code is one of them


def stable_shard(patient: str, shards: int) -> int:
    """The shard of a patient: a stable hash, the same on every machine and run."""
    return _hash(patient) % shards


@lru_cache(maxsize=65536)
def _hash(patient: str) -> int:
    return int.from_bytes(hashlib.sha256(patient.encode()).digest()[:8], "big")


def is_partition(path: Path) -> bool:
    return (path / MANIFEST).is_file()


def read_manifest(path: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{path / MANIFEST}: not a partition of this version (format {manifest.get('format')!r})")
    return manifest


def partition(source: Path, out: Path, shards: int, knowledge: Knowledge, workers: int = 1) -> dict[str, Any]:
    """Read `source` once and write `out/shard-IIII/bucket-JJJJ-wWW.ndjson` (one file per bucket and
    writer process) and `out/manifest.json`. Large plain NDJSON files are split into byte ranges, so
    `workers` processes share one big Observation file."""
    files = export_files(source)
    per_shard = max(1, -(-expected_bytes(files) // (shards * BUCKET_EXPORT_BYTES)))
    per_shard = max(1, min(per_shard, MAX_OPEN_FILES // (shards * workers)))
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for shard in range(shards):
        (out / _shard_dir(shard)).mkdir()
    units = _units(files)
    loads = [0] * workers
    jobs: list[list[tuple[Path, int, int | None]]] = [[] for _ in range(workers)]
    for unit in sorted(units, key=lambda u: -((u[2] or u[0].stat().st_size) - u[1])):  # largest first, least loaded
        w = loads.index(min(loads))
        jobs[w].append(unit)
        loads[w] += (unit[2] or unit[0].stat().st_size) - unit[1]
    args = [(w, jobs[w], out, shards, per_shard, frozenset(knowledge.loinc_to_analyte)) for w in range(workers)]
    if workers == 1:
        results = [_write(*args[0])]
    else:
        with pool_context().Pool(workers) as pool:
            results = pool.starmap(_write, args)
    counts: list[Counter[str]] = [Counter() for _ in range(shards * per_shard)]
    read: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    history_end: datetime | None = None
    for result_counts, result_read, result_skipped, end in results:
        for total, part in zip(counts, result_counts, strict=True):
            total.update(part)
        read.update(result_read)
        skipped.update(result_skipped)
        history_end = end if history_end is None or (end is not None and end > history_end) else history_end
    manifest = _manifest(source, files, shards, per_shard, workers, counts, read, skipped, history_end, out)
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest


SPLIT_BYTES = 32 * 2**20  # a plain NDJSON file larger than this is read in ranges of this size


def _units(files: list[Path]) -> list[tuple[Path, int, int | None]]:
    """(file, first byte, end byte or None for the whole file)."""
    units: list[tuple[Path, int, int | None]] = []
    for path in files:
        size = path.stat().st_size
        if path.name.endswith(".ndjson") and size > SPLIT_BYTES:
            units += [(path, start, min(start + SPLIT_BYTES, size)) for start in range(0, size, SPLIT_BYTES)]
        else:
            units.append((path, 0, None))
    return units


def _write(
    writer: int,
    units: list[tuple[Path, int, int | None]],
    out: Path,
    shards: int,
    per_shard: int,
    codes: frozenset[str],
) -> tuple[list[Counter[str]], Counter[str], Counter[str], datetime | None]:
    """One writer process: its units' resources into its own file of each bucket."""
    buckets = shards * per_shard
    sinks: list[BinaryIO] = [
        (out / _bucket_file(b, shards, writer)).open("wb", buffering=2**16) for b in range(buckets)
    ]
    counts: list[Counter[str]] = [Counter() for _ in range(buckets)]  # type per bucket, and "bytes"
    read: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    history_end: datetime | None = None
    keep = _Keep(codes)
    try:
        with _MedicationWriter(out / _shared_file(writer)) as shared:
            for raw, resource in _all(units, keep, read, skipped):
                rtype = resource.get("resourceType")
                if rtype == "Medication":
                    shared.add(resource, raw)
                    continue
                if rtype not in PATIENT_TYPES or (rtype == "Observation" and not _read_by_a_rule(resource, codes)):
                    skipped[f"{rtype} (not read by any rule)"] += 1
                    continue
                patient = patient_of(resource)
                if patient is None:
                    skipped[f"{rtype} (no patient)"] += 1
                    continue
                history_end = _later(history_end, resource)
                bucket = _hash(patient) % buckets
                line = orjson.dumps(patient) + b"\t" + (raw.rstrip(b"\r\n") if raw else orjson.dumps(resource)) + b"\n"
                sinks[bucket].write(line)
                counts[bucket][rtype] += 1
                counts[bucket]["bytes"] += len(line)
    finally:
        for sink in sinks:
            sink.close()
    return counts, read, skipped, history_end


class _Keep:
    """Decides from the raw line, without parsing it, that a line is of a type no rule reads, or an
    Observation of no code a rule reads (most of an export): those are counted and never parsed."""

    def __init__(self, codes: frozenset[str]) -> None:
        self.codes = codes
        self._codes = {c.encode() for c in codes}
        self._wanted = {t.encode() for t in (*PATIENT_TYPES, "Medication")}

    def skipped_type(self, line: bytes) -> str | None:
        types = set(TYPE_OF.findall(line))
        if len(types) != 1:
            return None  # none found (then parsing names the problem) or contained resources: parse
        (rtype,) = types
        if rtype not in self._wanted or (rtype == b"Observation" and not self._codes.intersection(CODE.findall(line))):
            return str(rtype.decode())
        return None


def _all(
    units: list[tuple[Path, int, int | None]], keep: _Keep, read: Counter[str], skipped: Counter[str]
) -> Iterator[tuple[bytes | None, dict[str, Any]]]:
    """Every resource worth parsing, with its raw line when it came from NDJSON."""
    for path, start, end in units:
        for line, where in read_lines(path, start, end):
            rtype = keep.skipped_type(line)
            if rtype is not None:
                read[rtype] += 1
                skipped[f"{rtype} (not read by any rule)"] += 1
                continue
            resource = parse_object(line, where)
            read[str(resource.get("resourceType"))] += 1
            yield line, resource
        if not path.name.endswith(NDJSON_SUFFIXES):
            for resource in read_bundle(path):
                read[str(resource.get("resourceType"))] += 1
                yield None, resource


def _read_by_a_rule(obs: dict[str, Any], codes: frozenset[str]) -> bool:
    concept = obs.get("code")
    codings = concept.get("coding") if isinstance(concept, dict) else None
    return isinstance(codings, list) and any(
        isinstance(c, dict) and c.get("system") == LOINC and c.get("code") in codes for c in codings
    )


def _later(end: datetime | None, resource: dict[str, Any]) -> datetime | None:
    """The history ends at its last order or lab: outcome windows past it are censored."""
    rtype = resource.get("resourceType")
    if rtype == "MedicationRequest":
        when = parse_datetime(resource.get("authoredOn"))
    elif rtype == "Observation":
        when = effective_time(resource)
    else:
        return end
    return when if when is not None and (end is None or when > end) else end


def _shard_dir(shard: int) -> str:
    return f"shard-{shard:04d}"


def _bucket_file(bucket: int, shards: int, writer: int) -> str:
    """Bucket b belongs to shard b % N (so a patient's shard is its hash % N, as `stable_shard` says)."""
    return f"{_shard_dir(bucket % shards)}/bucket-{bucket // shards:04d}-w{writer:02d}.ndjson"


ORDER_TYPES = ("MedicationRequest", "MedicationStatement")


def _manifest(
    source: Path,
    files: list[Path],
    shards: int,
    per_shard: int,
    workers: int,
    counts: list[Counter[str]],
    read: Counter[str],
    skipped: Counter[str],
    history_end: datetime | None,
    out: Path,
) -> dict[str, Any]:
    shard_rows = []
    for shard in range(shards):
        buckets: list[dict[str, Any]] = []
        for b in range(shard, shards * per_shard, shards):
            c = counts[b]
            resources = {t: n for t, n in sorted(c.items()) if t != "bytes"}
            buckets.append(
                {"files": [_bucket_file(b, shards, w) for w in range(workers)], "bytes": c["bytes"],
                 "resources": sum(resources.values()),
                 "orders": sum(c[t] for t in ORDER_TYPES), "by_type": resources}
            )  # fmt: skip
        by_type: Counter[str] = Counter()
        for bucket in buckets:
            by_type.update(bucket["by_type"])
        shard_rows.append(
            {"shard": shard, "bytes": sum(b["bytes"] for b in buckets), "resources": sum(by_type.values()),
             "orders": sum(by_type[t] for t in ORDER_TYPES), "by_type": dict(sorted(by_type.items())),
             "buckets": buckets}
        )  # fmt: skip
    kept = sum(row["resources"] for row in shard_rows)
    shared = [_shared_file(w) for w in range(workers)]
    return {
        "format": FORMAT,
        "source": str(source),
        "files": [{"name": p.name, "bytes": p.stat().st_size} for p in files],
        "export_bytes": sum(p.stat().st_size for p in files),
        "shards": shards,
        "buckets_per_shard": per_shard,
        "resources_read": sum(read.values()),
        "read_by_type": dict(sorted(read.items())),
        "resources_kept": kept,
        "skipped": dict(sorted(skipped.items())),
        "shared": {
            "files": shared,
            "bytes": sum((out / f).stat().st_size for f in shared),
            "resources": read["Medication"],
        },
        "history_end": history_end.isoformat() if history_end else None,
        "shard_counts": shard_rows,
    }


def _shared_file(writer: int) -> str:
    return f"{SHARED_FILE}-w{writer:02d}.sqlite3"


class _MedicationWriter:
    """One writer's Medication resources, by reference, in batches."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path)
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("CREATE TABLE medication (ref TEXT PRIMARY KEY, body BLOB)")
        self.rows: list[tuple[str, bytes]] = []

    def add(self, resource: dict[str, Any], raw: bytes | None) -> None:
        body = raw.rstrip(b"\r\n") if raw else orjson.dumps(resource)
        self.rows.append((f"Medication/{resource.get('id')}", body))
        if len(self.rows) >= 5000:
            self._flush()

    def _flush(self) -> None:
        self.db.executemany("INSERT OR REPLACE INTO medication VALUES (?, ?)", self.rows)
        self.rows.clear()

    def __enter__(self) -> _MedicationWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._flush()
        self.db.commit()
        self.db.close()


class Medications:
    """The partition's Medication resources, looked up by reference (Medication/id), read-only."""

    def __init__(self, paths: list[Path]) -> None:
        self.dbs = [sqlite3.connect(f"file:{p}?mode=ro", uri=True) for p in paths]

    def of(self, refs: Iterable[str]) -> dict[str, dict[str, Any]]:
        wanted = sorted(refs)
        found: dict[str, dict[str, Any]] = {}
        if not wanted:
            return found
        marks = ",".join("?" * len(wanted))
        for db in self.dbs:
            for ref, body in db.execute(f"SELECT ref, body FROM medication WHERE ref IN ({marks})", wanted):
                found[ref] = orjson.loads(body)
        return found

    def close(self) -> None:
        for db in self.dbs:
            db.close()


def shard_patients(paths: list[Path]) -> Iterator[tuple[str, list[bytes]]]:
    """One bucket's patients (its files, one per writer), each with its resources' JSON (unparsed),
    in a stable order."""
    grouped: dict[bytes, list[bytes]] = {}
    for path in paths:
        with path.open("rb") as lines:
            for line in lines:
                key, _, body = line.partition(b"\t")
                grouped.setdefault(key, []).append(body)
    for key in sorted(grouped):
        yield orjson.loads(key), grouped.pop(key)


def pool_context() -> multiprocessing.context.BaseContext:
    """fork where this process runs one thread (the workers start at once and share the parent's pages);
    forkserver otherwise: a child forked while another thread holds a lock (a logging handler, a
    connection pool) waits for it for ever. Found under pytest-xdist, where a worker runs an app's
    card-recorder thread beside the simulation."""
    return multiprocessing.get_context("fork" if threading.active_count() == 1 else "forkserver")
