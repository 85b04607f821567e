"""Helpers shared by the benchmark scripts: percentiles, tables, result files, machine description.
Importing it also makes the test suite's real-server helpers importable (tests/servers.py for a free
port and the sekmet FHIR server, tests/postgres.py for a throwaway PostgreSQL)."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from loadgen import Fresh, drive

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


class FhirAnswers(BaseHTTPRequestHandler):
    """A stand-in FHIR server's handler: keep-alive HTTP/1.1, FHIR JSON answers, no access log."""

    protocol_version = "HTTP/1.1"

    def answer(self, status: int, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


class _LoopbackServer(ThreadingHTTPServer):
    request_queue_size = 256  # the default backlog of 5 drops simultaneous connects (1 s SYN retry)
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that stops drops its connections
            super().handle_error(request, client_address)


def serve_in_thread(handler: type[BaseHTTPRequestHandler], port: int) -> ThreadingHTTPServer:
    """`handler` on 127.0.0.1:`port`, one thread per connection, until `.shutdown()`."""
    server = _LoopbackServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _stat_fields(pid: int | str) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (which may hold spaces); None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def process_tree(pid: int) -> list[int]:
    """The gunicorn master and every process under it (its workers)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        fields = _stat_fields(entry) if entry.isdigit() else None
        if fields:
            children.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, ()))
    return out


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes (Linux /proc): what the server spent, whatever the client did."""
    stats = [fields for fields in map(_stat_fields, pids) if fields]
    return sum(int(f[11]) + int(f[12]) for f in stats) / os.sysconf("SC_CLK_TCK")


def pooled_run(
    pooled: dict[tuple, dict],
    key: tuple,
    pids: list[int],
    port: int,
    path: str,
    body: bytes,
    concurrency: int,
    seconds: float,
    fresh: Fresh | None = None,
) -> None:
    """Drive one load run against a server (loadgen.drive) and add its latencies, errors, wall time
    and the server's own CPU (`pids`) to `pooled[key]`: rounds interleaved across servers pool here."""
    cpu_before = cpu_seconds(pids)
    latencies, errors, wall = drive(port, path, body, concurrency, seconds, fresh)
    slot = pooled.setdefault(key, {"lat": [], "err": 0, "wall": 0.0, "cpu": 0.0})
    slot["cpu"] += cpu_seconds(pids) - cpu_before
    slot["lat"] += latencies
    slot["err"] += errors
    slot["wall"] += wall


def pooled_figures(slot: dict) -> dict:
    """Errors, requests, throughput, p50/p99 (ms) and the server's CPU per call of the pooled runs."""
    cpu_ms = round(1000 * slot["cpu"] / max(1, len(slot["lat"])), 2)
    return {"errors": slot["err"], **load_figures(slot["lat"], slot["wall"]), "server_cpu_ms": cpu_ms}
