"""`cds-service simulate`: replay one shard of a partitioned export (partition.py) on every core,
show progress, check that every resource the manifest counts was read, and merge the workers'
figures (sums: exact). An export that is not partitioned yet is partitioned first, as one shard."""

from __future__ import annotations

import shutil
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import orjson

from ..config import Settings
from ..knowledge.model import Knowledge
from ..pipeline import Pipeline
from ..record.dates import parse_datetime
from .figures import Figures
from .partition import Medications, is_partition, partition, pool_context, read_manifest, shard_patients
from .replay import replay_patient

PROGRESS_EVERY_SECONDS = 2.0


def simulate(
    source: Path,
    out: Path,
    configs: dict[str, Settings],
    since: datetime | None = None,
    until: datetime | None = None,
    shard: tuple[int, int] | None = None,
    workers: int = 1,
    progress: TextIO | None = None,
) -> tuple[dict[str, Figures], dict[str, Any]]:
    """Figures per configuration (the first is the site's, a second one is --compare), and what was
    read (the `input` of figures.json, which the merge checks against the manifest)."""
    out.mkdir(parents=True, exist_ok=True)
    global _KNOWLEDGE, _SILENT
    _KNOWLEDGE = {label: s.knowledge() for label, s in configs.items()}  # once, before the workers fork
    _SILENT = {label: s.silent for label, s in configs.items()}
    if is_partition(source):
        part, manifest = source, read_manifest(source)
        number, count = shard or (0, manifest["shards"])
        if count != manifest["shards"] or (shard is None and count > 1):
            raise ValueError(
                f"{source}: a partition of {manifest['shards']} shards: give --shard I/{manifest['shards']}"
            )
    else:
        if shard is not None and shard[1] > 1:
            raise ValueError(
                f"--shard {shard[0]}/{shard[1]} reads a partition: run `cds-service simulate partition {source} "
                f"--shards {shard[1]} --out DIR` once, then `cds-service simulate DIR --shard I/{shard[1]}`"
            )
        part = out / "partition"
        manifest = partition(source, part, 1, next(iter(_KNOWLEDGE.values())), workers)
        number, count = 0, 1
    row = manifest["shard_counts"][number]
    history_end = parse_datetime(manifest["history_end"])
    files = [[part / f for f in b["files"]] for b in row["buckets"]]
    groups = [files[w::workers] for w in range(workers)]
    shared = manifest["shared"]["files"]
    jobs = [(part, shared, group, since, until, history_end) for group in groups if group]
    context = pool_context()
    done = context.Value("i", 0)
    results: list[tuple[dict[str, Figures], Counter[str]]] = []
    started = time.monotonic()
    total = row["orders"]
    if len(jobs) <= 1:
        _init(done, _KNOWLEDGE, _SILENT)
        results = [_replay_group(*job, report=_reporter(progress, done, total, started)) for job in jobs]
    else:
        with context.Pool(len(jobs), initializer=_init, initargs=(done, _KNOWLEDGE, _SILENT)) as pool:
            pending = pool.starmap_async(_replay_group, jobs)
            while not pending.ready():
                _report(progress, done.value, total, started)
                pending.wait(PROGRESS_EVERY_SECONDS)
            results = pending.get()
    _report(progress, done.value, total, started, final=True)
    merged = {label: Figures() for label in configs}
    read: Counter[str] = Counter()
    for result, counted in results:
        read.update(counted)
        for label, figures in result.items():
            merged[label].merge(figures)
    if dict(sorted(read.items())) != row["by_type"]:
        raise ValueError(f"shard {number}/{count}: read {dict(read)}, the manifest counts {row['by_type']}")
    if part == out / "partition":
        shutil.rmtree(part)
    about_input = {
        "shards": count,
        "resources": sum(read.values()),
        "bytes_read": row["bytes"] + manifest["shared"]["bytes"],
        "export_bytes": manifest["export_bytes"],
        "manifest_resources_kept": manifest["resources_kept"],
        "history_end": manifest["history_end"],
    }
    return merged, {"shard": number, **about_input}


_DONE: Any = None
_KNOWLEDGE: dict[str, Knowledge] = {}  # per configuration, loaded by the parent, handed to each worker
_SILENT: dict[str, bool] = {}  # per configuration: every rule silent (`silent: true`)


def _init(done: Any, knowledge: dict[str, Knowledge], silent: dict[str, bool]) -> None:
    global _DONE, _KNOWLEDGE, _SILENT
    _DONE, _KNOWLEDGE, _SILENT = done, knowledge, silent


def _replay_group(
    part: Path,
    manifest_shared: list[str],
    buckets: list[list[Path]],
    since: datetime | None,
    until: datetime | None,
    history_end: datetime | None,
    report: Callable[[], None] | None = None,
) -> tuple[dict[str, Figures], Counter[str]]:
    medications = Medications([part / name for name in manifest_shared])
    pipelines = {label: Pipeline(k, _SILENT.get(label, False)) for label, k in _KNOWLEDGE.items()}
    figures = {label: Figures() for label in _KNOWLEDGE}
    read: Counter[str] = Counter()
    for bucket in buckets:
        for patient, bodies in shard_patients(bucket):
            resources = [orjson.loads(body) for body in bodies]
            read.update(r["resourceType"] for r in resources)
            scanned = replay_patient(patient, resources, medications, pipelines, figures, since, until, history_end)
            with _DONE.get_lock():
                _DONE.value += scanned
            if report:
                report()
    medications.close()
    return figures, read


def _reporter(stream: TextIO | None, done: Any, total: int, started: float) -> Callable[[], None]:
    last = [0.0]

    def report() -> None:
        if time.monotonic() - last[0] >= PROGRESS_EVERY_SECONDS:
            last[0] = time.monotonic()
            _report(stream, done.value, total, started)

    return report


def _report(stream: TextIO | None, done: int, total: int, started: float, final: bool = False) -> None:
    if stream is None:
        return
    elapsed = max(time.monotonic() - started, 1e-6)
    rate = done / elapsed
    left = (total - done) / rate if rate > 0 else 0.0
    share = f"{done / total:.0%}" if total else "100%"
    tail = f"done in {elapsed:.1f} s" if final else f"about {left:.0f} s left"
    print(f"simulate: {done:,}/{total:,} orders read ({share}), {rate:,.0f}/s, {tail}", file=stream, flush=True)
