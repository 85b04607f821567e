"""HTTP benchmark: the service under gunicorn against a baseline app under the same server and workers.

    python bench/http_bench.py [--quick] [--workers 2] [--threads 4] [--seconds 2] [--rounds 5]

Both run side by side and receive the same bodies at fixed concurrency levels from bench/loadgen.py
(separate processes, loopback): the typical order-sign (5 drafts, 20 active medications, 200
Observations in prefetch), the same about a new patient on every call ("first sight": ids, timestamps
and hookInstance new each time, so no per-content cache of the service has seen them; the baseline
gets the same bodies) and an unrelated order (one metformin draft, the same full prefetch).
Rounds interleave baseline and service, because this machine's speed drifts from minute to minute.
The service logs at INFO and keeps metrics on, as in production. Prints throughput, latency
percentiles and the servers' own CPU per request (from /proc, so the load generator's share is not
counted), and service / baseline ratios of each, all from one run.
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
from common import machine, pooled_figures, pooled_run, print_table, process_tree, write_result
from loadgen import drive
from workload import first_sight, request

from cds_service.cli import DEFAULT_THREADS, HEARTBEAT_DIR
from tests.servers import free_port

HERE = Path(__file__).resolve().parent
PATH = "/cds-services/magnesium-order-sign"


def start(
    kind: str, workers: int, threads: int, data_dir: Path, config: Path | None = None
) -> tuple[subprocess.Popen, int]:
    """Baseline or service under gunicorn on a free port, once it answers; `config`: the service's YAML."""
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
            "--metrics-port",
            str(free_port()),  # metrics on, as in production, on a port no other run holds
            *(("--config", str(config)) if config else ()),
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
            *(("--worker-tmp-dir", HEARTBEAT_DIR) if Path(HEARTBEAT_DIR).is_dir() else ()),  # as `serve` does
            "baseline_app:app",
        ]
    # INFO is the production level: one JSON line per request, written to a file as a container's stdout would be.
    env = {**os.environ, "CDS_SERVICE_DATA_DIR": str(data_dir), "CDS_SERVICE_LOG_LEVEL": "INFO"}
    log = (data_dir / f"{kind}-{threads}.log").open("w")
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


def run(
    quick: bool = False, workers: int = 2, threads: int = DEFAULT_THREADS, seconds: float = 2.0, rounds: int = 0
) -> dict:
    """Both apps run side by side; each round drives baseline then service for every case and level, so
    a slow minute of this shared machine falls on both. Figures pool every round."""
    rounds = rounds or (3 if quick else 5)
    bodies = {
        "typical": json.dumps(request(200, 20)).encode(),
        "first-sight": json.dumps(request(200, 20, marked=True)).encode(),
        "unrelated": json.dumps(request(200, 20, unrelated=True)).encode(),
    }
    fresh = {"first-sight": first_sight}
    levels = [1, 4] if quick else [1, 4, 8]
    data_dir = HERE / "results" / "http-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    servers = {kind: start(kind, workers, threads, data_dir) for kind in ("baseline", "service")}
    pooled: dict[tuple, dict] = {}
    try:
        trees = {kind: process_tree(proc.pid) for kind, (proc, _) in servers.items()}
        for _, port in servers.values():
            drive(port, PATH, bodies["typical"], 2, 1.0)  # warm-up
        for r in range(rounds):
            print(f"round {r + 1}/{rounds}", file=sys.stderr, flush=True)
            for case, body in bodies.items():
                for concurrency in levels:
                    for kind, (_, port) in servers.items():
                        key = (kind, case, concurrency)
                        pooled_run(pooled, key, trees[kind], port, PATH, body, concurrency, seconds, fresh.get(case))
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(timeout=20)
    rows = []
    for (kind, case, concurrency), slot in pooled.items():
        rows.append({"app": kind, "case": case, "concurrency": concurrency, **pooled_figures(slot)})
    rows.sort(key=lambda row: (row["app"], row["case"], row["concurrency"]))
    sizes = ", ".join(f"{case} {len(body) / 1024:.0f} KiB" for case, body in bodies.items())
    print(
        f"bodies: {sizes}; {workers} workers x {threads} threads (gthread, both apps); {rounds} rounds of "
        f"{seconds:g} s per level, baseline and service interleaved; service at log level INFO"
    )
    columns = ["app", "case", "concurrency", "requests", "errors", "req_per_s", "p50_ms", "p99_ms", "server_cpu_ms"]
    print_table(rows, columns)
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
                    "cpu_ratio": round(svc["server_cpu_ms"] / base["server_cpu_ms"], 2),
                }
            )
    print(
        "service / baseline (targets: typical p50 <= 2, p99 <= 3, throughput >= 0.5; unrelated p50 <= 1.3; "
        "first-sight p50 <= 2.5)"
    )
    print_table(ratios, ["case", "concurrency", "p50_ratio", "p99_ratio", "throughput_ratio", "cpu_ratio"])
    result = {
        "machine": machine(),
        "workers": workers,
        "threads": threads,
        "rounds": rounds,
        "rows": rows,
        "ratios": ratios,
    }
    write_result(HERE / "results" / "http.json", result)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS, help="default: what `cds-service serve` uses")
    parser.add_argument("--seconds", type=float, default=2.0, help="per case, level and round")
    parser.add_argument("--rounds", type=int, default=0, help="default: 3 with --quick, else 5")
    args = parser.parse_args()
    run(args.quick, args.workers, args.threads, args.seconds, args.rounds)
