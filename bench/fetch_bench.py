"""Fetch benchmark: no prefetch, every key fetched from a real FHIR server (sekmet-fhir) behind a
loopback proxy that adds a fixed latency per call. Parallel fetching should cost about as much as the
slowest single query; the ratio total / slowest is the figure of merit (target <= 1.3).

    python bench/fetch_bench.py [--quick] [--latency-ms 50]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import ThreadingHTTPServer
from pathlib import Path

import requests
from common import FhirAnswers, machine, print_table, serve_in_thread, write_result
from workload import NOW, PATIENT, request

from cds_service.config import settings_from_mapping
from cds_service.fhir.client import FhirFetcher
from cds_service.fhir.templates import resolve, templates_for
from cds_service.protocol.request import parse_request
from cds_service.service import CdsService
from tests.servers import free_port, sekmet

HERE = Path(__file__).resolve().parent
SERVICE_ID = "magnesium-order-sign"


def load(base: str, body: dict) -> None:
    resources = [body["prefetch"]["patient"]]
    for key, value in body["prefetch"].items():
        if key != "patient":
            resources += [e["resource"] for e in value["entry"]]
    entries = [
        {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in resources
    ]
    response = requests.post(
        base, json={"resourceType": "Bundle", "type": "transaction", "entry": entries}, timeout=120
    )
    response.raise_for_status()


def start_proxy(target: str, latency_s: float) -> tuple[ThreadingHTTPServer, str]:
    port = free_port()
    proxy_base = f"http://127.0.0.1:{port}/fhir"
    session = requests.Session()

    class Proxy(FhirAnswers):
        def do_GET(self):
            time.sleep(latency_s)
            upstream = session.get(target.rsplit("/fhir", 1)[0] + self.path, timeout=30)
            self.answer(upstream.status_code, upstream.content.replace(target.encode(), proxy_base.encode()))

    server = serve_in_thread(Proxy, port)
    return server, proxy_base


def run(quick: bool = False, latency_ms: float = 50.0) -> dict:
    rounds = 5 if quick else 15
    body = request(200, 20)
    with tempfile.TemporaryDirectory() as tmp, sekmet(Path(tmp)) as base:
        load(base, body)
        proxy, proxy_base = start_proxy(base, latency_ms / 1000)
        settings = settings_from_mapping(
            {
                "data_dir": os.path.join(tmp, "cds"),
                "fhir": {
                    "servers": [{"base_url": proxy_base, "allow_http": True, "allow_without_token": True}],
                    "timeout_seconds": 5,
                    "deadline_seconds": 10,
                },
            },
            now=NOW,
        )
        fetcher = FhirFetcher(5, 10, 3, 20_000_000)
        service = CdsService(settings, fetcher)
        no_prefetch = copy.deepcopy(body)
        del no_prefetch["prefetch"]
        no_prefetch["fhirServer"] = proxy_base
        hook_request = parse_request(no_prefetch, SERVICE_ID)
        templates = templates_for(service.discovery, SERVICE_ID, "order-sign")
        # A template whose token this request has no value for (the encounter's) is not fetched.
        templates = {key: t for key, t in templates.items() if resolve(t, hook_request) is not None}
        single: dict[str, list[float]] = {key: [] for key in templates}
        totals, raw_parallel = [], []
        queries = [resolve(t, hook_request) for t in templates.values()]
        pool = ThreadPoolExecutor(len(queries))
        for _ in range(rounds):
            for key, template in templates.items():
                started = time.perf_counter()
                requests.get(f"{proxy_base}/{resolve(template, hook_request)}", timeout=30).raise_for_status()
                single[key].append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()  # the ideal: the same queries in parallel, nothing else
            list(pool.map(lambda q: requests.get(f"{proxy_base}/{q}", timeout=30).raise_for_status(), queries))
            raw_parallel.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            response = service.call(SERVICE_ID, no_prefetch).response
            totals.append((time.perf_counter() - started) * 1000)
            assert "extension" not in response, response.get("extension")
        proxy.shutdown()
    per_key = [{"key": k, "median_ms": round(statistics.median(v), 1)} for k, v in single.items()]
    slowest = max(r["median_ms"] for r in per_key)
    total = statistics.median(totals)
    print_table(per_key, ["key", "median_ms"])
    print(f"added latency {latency_ms:g} ms per call; {len(templates)} queries in parallel")
    ideal = statistics.median(raw_parallel)
    print(
        f"total (whole hook call, no prefetch) median {total:.1f} ms; slowest single query {slowest:.1f} ms; "
        f"ratio {total / slowest:.2f}"
    )
    print(
        f"the same {len(templates)} queries fired in parallel by a bare client: {ideal:.1f} ms "
        f"(this server's own limit: x{ideal / slowest:.2f}); service / bare parallel: x{total / ideal:.2f}"
    )
    result = {
        "machine": machine(),
        "latency_ms": latency_ms,
        "queries": per_key,
        "total_median_ms": round(total, 1),
        "slowest_query_ms": slowest,
        "ratio": round(total / slowest, 2),
        "bare_parallel_ms": round(ideal, 1),
        "ratio_to_bare_parallel": round(total / ideal, 2),
        "patient": PATIENT,
    }
    write_result(HERE / "results" / "fetch.json", result)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    args = parser.parse_args()
    run(args.quick, args.latency_ms)
