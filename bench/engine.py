"""Engine benchmark (in-process): one hook call through protocol -> record -> rules -> cards.

Prints median / p95 / p99 per golden scenario request and over all of them; writes bench/results/engine.json.
Not a timed test: run it by hand, `python bench/engine.py [--rounds N]`.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

from cds_service.config import Settings
from cds_service.service import CdsService

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime.fromisoformat("2026-11-15T12:00:00+00:00")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    service = CdsService(Settings(now=NOW))
    requests = [
        json.loads(p.read_text()) for p in sorted((ROOT / "fixtures" / "scenarios").glob("*/request.order-sign.json"))
    ]
    for body in requests[:5]:
        service.call("magnesium-order-check", body)  # warm-up
    samples: list[float] = []
    for _ in range(args.rounds):
        for body in requests:
            started = time.perf_counter()
            service.call("magnesium-order-check", body)
            samples.append((time.perf_counter() - started) * 1000)
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.python_implementation()} {platform.python_version()}",
        "calls": len(samples),
        "median_ms": round(statistics.median(samples), 3),
        "p95_ms": round(percentile(samples, 0.95), 3),
        "p99_ms": round(percentile(samples, 0.99), 3),
    }
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "engine.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'calls':>8} {'median ms':>10} {'p95 ms':>8} {'p99 ms':>8}")
    print(f"{result['calls']:>8} {result['median_ms']:>10} {result['p95_ms']:>8} {result['p99_ms']:>8}")


if __name__ == "__main__":
    main()
