"""Store benchmark: what the feedback store and the recording of cards cost, on SQLite and on a
real PostgreSQL, and what a PostgreSQL outage does to hook calls.

    python bench/store_bench.py [--quick] [--seconds 5] [--concurrency 4]

For each store, `cds-service serve` (2 workers x 4 threads) gets (1) the typical order-sign body
(bench/workload.py) back to back from C client processes: every card it returns is recorded, and
(2) feedback posts of one new item each. Then, on PostgreSQL, the database refuses connections and
(3) hook calls go on (their cards wait in memory) while (4) feedback answers 503. Needs PostgreSQL's
server binaries (Debian's postgresql) for a throwaway cluster, as the tests do. Prints req/s and
latency percentiles; writes bench/results/store.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests
from common import load_figures, machine, print_table, write_result
from loadgen import drive, run_clients
from workload import request

from tests import postgres
from tests.servers import free_port

HERE = Path(__file__).resolve().parent

PATH = "/cds-services/magnesium-order-sign"


def start(env: dict[str, str], workdir: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    exe = Path(sys.executable).with_name("cds-service")
    cmd = [str(exe), "serve", "--port", str(port), "--workers", "2", "--threads", "4", "--now", "2026-11-15T12:00:00Z"]
    full_env = {**os.environ, "CDS_SERVICE_LOG_LEVEL": "WARNING", "CDS_SERVICE_DATA_DIR": str(workdir), **env}
    proc = subprocess.Popen(cmd, env=full_env, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc, port
        except requests.RequestException:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("cds-service did not start")


def _feedback_client(port: int, seconds: float, out: multiprocessing.Queue) -> None:
    latencies, statuses = [], {}
    deadline = time.perf_counter() + seconds
    with requests.Session() as session:
        while time.perf_counter() < deadline:
            item = {
                "card": str(uuid.uuid4()),
                "outcome": "overridden",
                "overrideReason": {"reason": {"system": "urn:mg-cds:override-reason", "code": "other"}},
                "outcomeTimestamp": "2026-11-15T12:05:00Z",
            }
            started = time.perf_counter()
            response = session.post(f"http://127.0.0.1:{port}{PATH}/feedback", json={"feedback": [item]}, timeout=30)
            latencies.append((time.perf_counter() - started) * 1000)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
    out.put((latencies, statuses))


def feedback_load(port: int, concurrency: int, seconds: float) -> tuple[list[float], dict[int, int], float]:
    results, wall = run_clients(_feedback_client, (port, seconds), concurrency, seconds)
    statuses: dict[int, int] = {}
    for _, s in results:
        for code, n in s.items():
            statuses[code] = statuses.get(code, 0) + n
    return [x for lat, _ in results for x in lat], statuses, wall


def row(store: str, what: str, latencies: list[float], wall: float, **extra) -> dict:
    return {"store": store, "load": what, **load_figures(latencies, wall), **extra}


def report(workdir: Path, env: dict[str, str]) -> dict:
    exe = Path(sys.executable).with_name("cds-service")
    full_env = {**os.environ, "CDS_SERVICE_DATA_DIR": str(workdir), **env}
    out = subprocess.run([str(exe), "report", "--json"], env=full_env, cwd=workdir, capture_output=True, text=True)
    return json.loads(out.stdout)["total"]


def run(quick: bool, seconds: float, concurrency: int) -> dict:
    seconds = 2.0 if quick else seconds
    body = json.dumps(request(200, 20)).encode()
    cards_per_call = 0
    rows: list[dict] = []
    root = Path(tempfile.mkdtemp(prefix="cds-store-bench-"))
    with postgres.cluster(free_port()) as admin, postgres.fresh_database(admin) as libpq_url:
        for store, env in (("sqlite", {}), ("postgresql", {"CDS_SERVICE_DATABASE_URL": libpq_url})):
            workdir = root / store
            workdir.mkdir()
            proc, port = start(env, workdir)
            try:
                first = requests.post(
                    f"http://127.0.0.1:{port}{PATH}",
                    data=body,
                    timeout=30,
                    headers={"Content-Type": "application/json"},
                )
                cards_per_call = len(first.json()["cards"])
                latencies, errors, wall = drive(port, PATH, body, concurrency, seconds)
                rows.append(row(store, f"hook calls ({cards_per_call} cards each)", latencies, wall, errors=errors))
                latencies, statuses, wall = feedback_load(port, concurrency, seconds)
                rows.append(
                    row(
                        store,
                        "feedback, 1 new item per post",
                        latencies,
                        wall,
                        errors=sum(n for code, n in statuses.items() if code != 200),
                    )
                )
                if store == "postgresql":
                    postgres.set_connections_allowed(admin, libpq_url, False)
                    try:
                        latencies, errors, wall = drive(port, PATH, body, concurrency, seconds)
                        rows.append(row(store, "hook calls, database refusing", latencies, wall, errors=errors))
                        latencies, statuses, wall = feedback_load(port, 1, min(seconds, 2.0))
                        rows.append(
                            row(
                                store,
                                "feedback, database refusing",
                                latencies,
                                wall,
                                errors=sum(n for c, n in statuses.items() if c != 503),
                            )
                        )
                    finally:
                        postgres.set_connections_allowed(admin, libpq_url, True)
                time.sleep(3)  # the recorders catch up (after an outage: their backoff)
                totals = report(workdir, env)
                rows[-1]["store_totals"] = f"{totals['issued']} cards, {totals['overridden']} feedback"
            finally:
                proc.terminate()
                proc.wait(timeout=30)
    print(
        f"typical order-sign body: {len(body) / 1024:.0f} KiB, {cards_per_call} cards per call; "
        f"2 workers x 4 threads; {concurrency} client processes; {seconds:g} s per load"
    )
    print_table(rows, ["store", "load", "requests", "errors", "req_per_s", "p50_ms", "p99_ms", "store_totals"])
    result = {"machine": machine(), "concurrency": concurrency, "cards_per_call": cards_per_call, "rows": rows}
    write_result(HERE / "results" / "store.json", result)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    run(args.quick, args.seconds, args.concurrency)
