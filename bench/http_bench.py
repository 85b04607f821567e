"""HTTP benchmark: the service under gunicorn against a baseline app under the same server and workers.

    python bench/http_bench.py [--quick] [--workers 2] [--threads 2] [--seconds 5]

Both receive the same bodies at fixed concurrency levels from bench/loadgen.py (separate processes,
loopback): the typical order-sign (5 drafts, 20 active medications, 200 Observations in prefetch)
and an unrelated order (one metformin draft, the same full prefetch). The service logs at INFO, as in
production. Prints throughput and latency percentiles per case, and service / baseline ratios for
p50, p99 and throughput, all from one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import requests
from common import load_figures, machine, print_table, write_result
from loadgen import drive
from workload import request

from cds_service.cli import DEFAULT_THREADS
from tests.servers import free_port

HERE = Path(__file__).resolve().parent
PATH = "/cds-services/magnesium-order-sign"


def start(kind: str, workers: int, threads: int, data_dir: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    bin_dir = Path(sys.executable).parent
    if kind == "service":
        cmd = [
            str(bin_dir / "cds-service"),
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--now",
            "2026-11-15T12:00:00Z",
        ]
    else:
        cmd = [
            str(bin_dir / "gunicorn"),
            "--chdir",
            str(HERE),
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            str(workers),
            "-k",
            "gthread",
            "--threads",
            str(threads),
            "baseline_app:app",
        ]
    # INFO is the production level: one JSON line per request, written to a file as a container's stdout would be.
    env = {**os.environ, "CDS_SERVICE_DATA_DIR": str(data_dir), "CDS_SERVICE_LOG_LEVEL": "INFO"}
    log = (data_dir / f"{kind}.log").open("w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.post(f"http://127.0.0.1:{port}{PATH}", json=request(10, 1), timeout=2)
            return proc, port
        except requests.RequestException:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{kind} did not start")


def run(quick: bool = False, workers: int = 2, threads: int = DEFAULT_THREADS, seconds: float = 5.0) -> dict:
    seconds = 2.0 if quick else seconds
    bodies = {
        "typical": json.dumps(request(200, 20)).encode(),
        "unrelated": json.dumps(request(200, 20, unrelated=True)).encode(),
    }
    levels = [1, 4] if quick else [1, 4, 8]
    rows = []
    data_dir = HERE / "results" / "http-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    for kind in ("baseline", "service"):
        proc, port = start(kind, workers, threads, data_dir)
        try:
            drive(port, PATH, bodies["typical"], 2, 1.0)  # warm-up
            for case, body in bodies.items():
                for concurrency in levels:
                    latencies, errors, wall = drive(port, PATH, body, concurrency, seconds)
                    figures = load_figures(latencies, wall)
                    rows.append({"app": kind, "case": case, "concurrency": concurrency, "errors": errors, **figures})
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    sizes = ", ".join(f"{case} {len(body) / 1024:.0f} KiB" for case, body in bodies.items())
    print(
        f"bodies: {sizes}; {workers} workers x {threads} threads (gthread, both apps); "
        f"{seconds:g} s per level; service at log level INFO"
    )
    print_table(rows, ["app", "case", "concurrency", "requests", "errors", "req_per_s", "p50_ms", "p99_ms"])
    ratios = []
    for case in bodies:
        for concurrency in levels:
            base = next(r for r in rows if (r["app"], r["case"], r["concurrency"]) == ("baseline", case, concurrency))
            svc = next(r for r in rows if (r["app"], r["case"], r["concurrency"]) == ("service", case, concurrency))
            ratios.append(
                {
                    "case": case,
                    "concurrency": concurrency,
                    "p50_ratio": round(svc["p50_ms"] / base["p50_ms"], 2),
                    "p99_ratio": round(svc["p99_ms"] / base["p99_ms"], 2),
                    "throughput_ratio": round(svc["req_per_s"] / base["req_per_s"], 2),
                }
            )
    print("service / baseline (targets: typical p50 <= 2, p99 <= 3, throughput >= 0.5; unrelated p50 <= 1.3)")
    print_table(ratios, ["case", "concurrency", "p50_ratio", "p99_ratio", "throughput_ratio"])
    result = {"machine": machine(), "workers": workers, "threads": threads, "rows": rows, "ratios": ratios}
    write_result(HERE / "results" / "http.json", result)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS, help="default: what `cds-service serve` uses")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    run(args.quick, args.workers, args.threads, args.seconds)
