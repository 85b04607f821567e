"""Threads per worker, chosen by measurement: `cds-service serve` with 2 workers and 1, 2, 4 or 8
gthread threads each, side by side, under the two loads an EHR sends:

- **prefetch**: the typical order-sign with full prefetch (the call is pure CPU);
- **no prefetch**: the same order-sign without prefetch, so the service fetches every key from the
  EHR's FHIR server (the call mostly waits). The answers are those of a real FHIR server
  (sekmet-fhir, loaded with the workload's patient), recorded once and then replayed by a small
  server that waits `--latency-ms` before each answer: a FHIR server on this machine would take the
  CPU the service needs, and a remote one costs the service nothing but the wait.

    python bench/threads_bench.py [--quick] [--latency-ms 50] [--threads 1,2,4,8] [--concurrency 8]

Rounds interleave the servers (this machine drifts). Prints throughput, p50/p99 and the service's
own CPU per call for each thread count and load; writes bench/results/threads.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

import requests
from common import (
    FhirAnswers,
    machine,
    pooled_figures,
    pooled_run,
    print_table,
    process_tree,
    serve_in_thread,
    write_result,
)
from fetch_bench import load
from http_bench import PATH, start
from workload import request

from cds_service.config import Settings
from cds_service.fhir.templates import resolve, templates_for
from cds_service.protocol.request import parse_request
from cds_service.service import CdsService
from tests.servers import free_port, sekmet

HERE = Path(__file__).resolve().parent
SERVICE_ID = "magnesium-order-sign"
MAX_PAGES = 3


def record(base: str, hook_body: dict) -> dict[str, bytes]:
    """The real server's answer to every query the service makes for this request (paging followed),
    keyed by path and query string, with the server's base URL left as a placeholder."""
    service = CdsService(Settings())
    hook_request = parse_request(hook_body, SERVICE_ID)
    templates = templates_for(service.discovery, SERVICE_ID, "order-sign")
    answers = {}
    for template in templates.values():
        url = f"{base}/{query}" if (query := resolve(template, hook_request)) else None
        for _ in range(MAX_PAGES):
            if url is None:
                break
            response = requests.get(url, headers={"Accept": "application/fhir+json"}, timeout=30)
            response.raise_for_status()
            answers[url.removeprefix(base)] = response.content.replace(base.encode(), b"{base}")
            nexts = [link["url"] for link in response.json().get("link", ()) if link.get("relation") == "next"]
            url = nexts[0] if nexts else None
    return answers


def replay(answers: dict[str, bytes], latency_s: float) -> tuple[ThreadingHTTPServer, str]:
    """A FHIR server that answers the recorded queries after `latency_s`, over keep-alive HTTP/1.1."""
    port = free_port()
    base = f"http://127.0.0.1:{port}/fhir"
    pages = {f"/fhir{path}": data.replace(b"{base}", base.encode()) for path, data in answers.items()}

    class Replay(FhirAnswers):
        def do_GET(self):
            time.sleep(latency_s)
            data = pages.get(self.path)
            self.answer(200 if data else 404, data or b'{"resourceType": "OperationOutcome"}')

    server = serve_in_thread(Replay, port)
    return server, base


def run(
    quick: bool = False, latency_ms: float = 50.0, thread_counts: tuple[int, ...] = (1, 2, 4, 8), c: int = 8
) -> dict:
    rounds, seconds = (2, 2.0) if quick else (4, 3.0)
    typical = request(200, 20)
    no_prefetch = copy.deepcopy(typical)
    del no_prefetch["prefetch"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "sekmet").mkdir()
        with sekmet(Path(tmp) / "sekmet") as base:
            load(base, typical)
            answers = record(base, no_prefetch)
        fhir, fhir_base = replay(answers, latency_ms / 1000)
        no_prefetch["fhirServer"] = fhir_base
        config = Path(tmp) / "cds.yaml"
        server = {"base_url": fhir_base, "allow_http": True, "allow_without_token": True}
        config.write_text(json.dumps({"fhir": {"servers": [server], "timeout_seconds": 5, "deadline_seconds": 10}}))
        bodies = {"prefetch": json.dumps(typical).encode(), "no prefetch": json.dumps(no_prefetch).encode()}
        servers = {}
        pooled: dict[tuple, dict] = {}
        try:
            for threads in thread_counts:
                data_dir = Path(tmp) / f"threads-{threads}"
                data_dir.mkdir()
                servers[threads] = start("service", 2, threads, data_dir, config)
            trees = {threads: process_tree(proc.pid) for threads, (proc, _) in servers.items()}
            for r in range(rounds):
                print(f"round {r + 1}/{rounds}", flush=True)
                for load_name, body in bodies.items():
                    for threads, (_, port) in servers.items():
                        pooled_run(pooled, (load_name, threads), trees[threads], port, PATH, body, c, seconds)
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(timeout=20)
            fhir.shutdown()
    for (load_name, threads), slot in pooled.items():
        rows.append({"load": load_name, "threads": threads, **pooled_figures(slot)})
    rows.sort(key=lambda row: (row["load"] != "prefetch", row["threads"]))
    print(
        f"2 workers x 1..8 threads (gthread), concurrency {c}, {rounds} interleaved rounds of {seconds:g} s; "
        f"no prefetch: {len(answers)} recorded FHIR answers, each after {latency_ms:g} ms"
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
