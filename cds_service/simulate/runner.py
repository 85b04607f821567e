"""`cds-service simulate`: index the export on disk, replay every patient of this shard on every core,
show progress, and merge the workers' figures (sums: exact)."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from ..clinical.engine import RuleEngine
from ..config import Settings
from .figures import Figures
from .index import ExportIndex, stable_shard
from .replay import ORDER_TYPES, replay_patient

PROGRESS_EVERY_SECONDS = 2.0


def simulate(
    source: Path,
    out: Path,
    configs: dict[str, Settings],
    since: datetime | None = None,
    until: datetime | None = None,
    shard: tuple[int, int] = (0, 1),
    workers: int = 1,
    progress: TextIO | None = None,
) -> dict[str, Figures]:
    """Figures per configuration (the first is the site's, a second one is --compare)."""
    out.mkdir(parents=True, exist_ok=True)
    index_path = out / "index.sqlite3"
    index_path.unlink(missing_ok=True)
    index = ExportIndex(index_path)
    index.load(source)
    number, count = shard
    patients = [p for p in index.patients() if stable_shard(p, count) == number]
    per_patient = index.orders_per_patient(ORDER_TYPES)
    index.close()
    total = sum(per_patient.get(p, 0) for p in patients)
    groups = [[p for p in patients if stable_shard(p, count * workers) == number + count * w] for w in range(workers)]
    done = multiprocessing.get_context("fork").Value("i", 0)
    jobs = [(index_path, group, configs, since, until) for group in groups if group]
    results: list[dict[str, Figures]] = []
    started = time.monotonic()
    if workers == 1 or len(jobs) <= 1:
        _init(done)
        results = [_replay_group(*job, report=_reporter(progress, done, total, started)) for job in jobs]
    else:
        with multiprocessing.get_context("fork").Pool(len(jobs), initializer=_init, initargs=(done,)) as pool:
            pending = pool.starmap_async(_replay_group, jobs)
            while not pending.ready():
                _report(progress, done.value, total, started)
                pending.wait(PROGRESS_EVERY_SECONDS)
            results = pending.get()
    _report(progress, done.value, total, started, final=True)
    merged = {label: Figures() for label in configs}
    for result in results:
        for label, figures in result.items():
            merged[label].merge(figures)
    index_path.unlink(missing_ok=True)
    return merged


_DONE: Any = None


def _init(done: Any) -> None:
    global _DONE
    _DONE = done


def _replay_group(
    index_path: Path,
    patients: list[str],
    configs: dict[str, Settings],
    since: datetime | None,
    until: datetime | None,
    report: Callable[[], None] | None = None,
) -> dict[str, Figures]:
    index = ExportIndex(index_path)
    medications = index.medications()
    knowledge = {label: s.knowledge() for label, s in configs.items()}  # loaded once per configuration
    engines = {label: (RuleEngine(k), k) for label, k in knowledge.items()}
    figures = {label: Figures() for label in configs}
    for patient in patients:
        resources = index.resources_of(patient)
        read = replay_patient(patient, resources, medications, engines, figures, since, until)
        with _DONE.get_lock():
            _DONE.value += read
        if report:
            report()
    index.close()
    return figures


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
