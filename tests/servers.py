"""Real servers on loopback for the tests and the benchmarks: a free port, and the sekmet-fhir R4
server (PostgreSQL is in tests/postgres.py)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def stand_in(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A stand-in FHIR server answering with `handler` on a free loopback port; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/fhir"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def sekmet(folder: Path) -> Iterator[str]:
    """An empty sekmet-fhir R4 server storing in `folder`, on a free port; yields its base URL.
    Its output goes to folder/sekmet.log, quoted if it does not start."""
    port = free_port()
    base = f"http://127.0.0.1:{port}/fhir"
    settings = folder / "settings.yaml"
    settings.write_text(
        f"host: 127.0.0.1\nport: {port}\nbase_url: {base}\ndata_dir: {folder / 'data'}\n"
        "simulator: {enabled: false}\nlog_inbound: false\n"
    )
    exe = shutil.which("sekmet") or str(Path(sys.executable).with_name("sekmet"))
    log_path = folder / "sekmet.log"
    with log_path.open("w") as log:  # the child keeps its own handle
        proc = subprocess.Popen(
            [exe, "serve", "-c", str(settings)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=folder,
            env={**os.environ, "SEKMET_CONFIG": str(settings)},
        )
    try:
        _wait_for(f"{base}/metadata", proc, log_path)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait_for(url: str, proc: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"FHIR server exited: {log_path.read_text()[-2000:]}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"FHIR server did not start: {log_path.read_text()[-2000:]}")
