"""HTTP benchmark: the service under gunicorn against a baseline app under the same server and workers.

    python bench/http_bench.py [--quick] [--workers 2] [--seconds 5]

Both receive the same typical order-sign body (5 drafts, 20 active medications, 200 Observations in
prefetch) at fixed concurrency levels from bench/loadgen.py (separate processes, loopback). Prints
throughput and latency percentiles, and the ratio service / baseline at p50 and p99.
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
    env = {**os.environ, "CDS_SERVICE_DATA_DIR": str(data_dir), "CDS_SERVICE_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.post(f"http://127.0.0.1:{port}{PATH}", json=request(10, 1), timeout=2)
            return proc, port
        except requests.RequestException:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{kind} did not start")


def run(quick: bool = False, workers: int = 2, threads: int = 4, seconds: float = 5.0) -> dict:
    seconds = 2.0 if quick else seconds
    body = json.dumps(request(200, 20)).encode()
    levels = [1, 4, 8] if quick else [1, 4, 8, 16]
    rows = []
    data_dir = HERE / "results" / "http-data"
    for kind in ("baseline", "service"):
        proc, port = start(kind, workers, threads, data_dir)
        try:
            drive(port, PATH, body, 2, 1.0)  # warm-up
            for concurrency in levels:
                latencies, errors, wall = drive(port, PATH, body, concurrency, seconds)
                figures = load_figures(latencies, wall)
                rows.append({"app": kind, "workers": workers, "concurrency": concurrency, "errors": errors, **figures})
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    print(
        f"typical order-sign body: {len(body) / 1024:.0f} KiB; {workers} workers x {threads} threads; "
        f"{seconds:g} s per level"
    )
    print_table(rows, ["app", "concurrency", "requests", "errors", "req_per_s", "p50_ms", "p99_ms"])
    ratios = []
    for concurrency in levels:
        base = next(r for r in rows if r["app"] == "baseline" and r["concurrency"] == concurrency)
        svc = next(r for r in rows if r["app"] == "service" and r["concurrency"] == concurrency)
        ratios.append(
            {
                "concurrency": concurrency,
                "p50_ratio": round(svc["p50_ms"] / base["p50_ms"], 2),
                "p99_ratio": round(svc["p99_ms"] / base["p99_ms"], 2),
                "service_req_per_s_per_worker": round(svc["req_per_s"] / workers, 1),
            }
        )
    print_table(ratios, ["concurrency", "p50_ratio", "p99_ratio", "service_req_per_s_per_worker"])
    result = {"machine": machine(), "body_kib": round(len(body) / 1024), "rows": rows, "ratios": ratios}
    write_result(HERE / "results" / "http.json", result)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    run(args.quick, args.workers, args.threads, args.seconds)
