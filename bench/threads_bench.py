"""Threads per worker, chosen by measurement: `cds-service serve` with 2 workers and 1, 2, 4 or 8
gthread threads each, side by side, under the two loads an EHR sends:

- **prefetch**: the typical order-sign with full prefetch (the call is pure CPU);
- **no prefetch**: the same order-sign without prefetch, so the service fetches every key from a
  real FHIR server (sekmet-fhir) behind a loopback proxy adding `--latency-ms` per query (the call
  mostly waits).

    python bench/threads_bench.py [--quick] [--latency-ms 50] [--threads 1,2,4,8] [--concurrency 8]

Rounds interleave the servers (this machine drifts). Prints throughput, p50/p99 and the servers' own
CPU per call for each thread count and load; writes bench/results/threads.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
from pathlib import Path

from common import load_figures, machine, print_table, write_result
from fetch_bench import load, start_proxy
from http_bench import PATH, _cpu_seconds, _tree, start
from loadgen import drive
from workload import request

from tests.servers import sekmet

HERE = Path(__file__).resolve().parent


def run(
    quick: bool = False, latency_ms: float = 50.0, thread_counts: tuple[int, ...] = (1, 2, 4, 8), c: int = 8
) -> dict:
    rounds, seconds = (2, 2.0) if quick else (4, 3.0)
    typical = request(200, 20)
    rows = []
    with tempfile.TemporaryDirectory() as tmp, sekmet(Path(tmp)) as base:
        load(base, typical)
        proxy, proxy_base = start_proxy(base, latency_ms / 1000)
        config = Path(tmp) / "cds.yaml"
        server = {"base_url": proxy_base, "allow_http": True, "allow_without_token": True}
        config.write_text(json.dumps({"fhir": {"servers": [server], "timeout_seconds": 5, "deadline_seconds": 10}}))
        no_prefetch = copy.deepcopy(typical)
        del no_prefetch["prefetch"]
        no_prefetch["fhirServer"] = proxy_base
        bodies = {"prefetch": json.dumps(typical).encode(), "no prefetch": json.dumps(no_prefetch).encode()}
        servers = {}
        try:
            for threads in thread_counts:
                data_dir = Path(tmp) / f"threads-{threads}"
                data_dir.mkdir()
                servers[threads] = start("service", 2, threads, data_dir, config)
            trees = {threads: _tree(proc.pid) for threads, (proc, _) in servers.items()}
            pooled: dict[tuple, dict] = {}
            for r in range(rounds):
                print(f"round {r + 1}/{rounds}", flush=True)
                for load_name, body in bodies.items():
                    for threads, (_, port) in servers.items():
                        cpu_before = _cpu_seconds(trees[threads])
                        latencies, errors, wall = drive(port, PATH, body, c, seconds)
                        slot = pooled.setdefault((load_name, threads), {"lat": [], "err": 0, "wall": 0.0, "cpu": 0.0})
                        slot["cpu"] += _cpu_seconds(trees[threads]) - cpu_before
                        slot["lat"] += latencies
                        slot["err"] += errors
                        slot["wall"] += wall
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(timeout=20)
            proxy.shutdown()
    for (load_name, threads), slot in pooled.items():
        figures = load_figures(slot["lat"], slot["wall"])
        cpu_ms = round(1000 * slot["cpu"] / max(1, len(slot["lat"])), 2)
        rows.append({"load": load_name, "threads": threads, "errors": slot["err"], **figures, "server_cpu_ms": cpu_ms})
    rows.sort(key=lambda row: (row["load"] != "prefetch", row["threads"]))
    print(
        f"2 workers x 1..8 threads (gthread), concurrency {c}, {rounds} interleaved rounds of {seconds:g} s; "
        f"no prefetch: {latency_ms:g} ms added per FHIR query"
    )
    print_table(rows, ["load", "threads", "requests", "errors", "req_per_s", "p50_ms", "p99_ms", "server_cpu_ms"])
    result = {"machine": machine(), "concurrency": c, "latency_ms": latency_ms, "rounds": rounds, "rows": rows}
    write_result(HERE / "results" / "threads.json", result)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--threads", default="1,2,4,8", help="thread counts to compare, comma-separated")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    run(args.quick, args.latency_ms, tuple(int(t) for t in args.threads.split(",")), args.concurrency)
