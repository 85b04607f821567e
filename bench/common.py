"""Helpers shared by the benchmark scripts: percentiles, tables, result files, machine description.
Importing it also makes the test suite's real-server helpers importable (tests/servers.py for a free
port and the sekmet FHIR server, tests/postgres.py for a throwaway PostgreSQL)."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def load_figures(latencies: list[float], wall: float) -> dict:
    """Requests, throughput and p50/p99 (ms) of one load run."""
    return {
        "requests": len(latencies),
        "req_per_s": round(len(latencies) / wall, 1),
        "p50_ms": round(statistics.median(latencies), 2) if latencies else None,
        "p99_ms": round(percentile(latencies, 0.99), 2) if latencies else None,
    }


def machine() -> str:
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}"
    )


def print_table(rows: list[dict], columns: list[str]) -> None:
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    print("  ".join(c.rjust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(str(row.get(c, "")).rjust(widths[c]) for c in columns))


def write_result(path: Path, result: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    result = {"date": datetime.now(UTC).isoformat(timespec="seconds"), **result}
    path.write_text(json.dumps(result, indent=2) + "\n")
