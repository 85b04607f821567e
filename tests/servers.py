"""Real servers on loopback for the tests and the benchmarks: a free port, and the sekmet-fhir R4
server (PostgreSQL is in tests/postgres.py)."""

from __future__ import annotations

import json
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
from typing import IO

import requests

from .timing import scaled


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SlowClients:
    """N connections that send a request's headers a byte a second, reconnecting when closed."""

    HEAD = b"POST /cds-services/magnesium-order-sign HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "

    def __init__(self, port: int, count: int) -> None:
        self.port, self.count, self.reconnects = port, count, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SlowClients:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _open(self) -> socket.socket | None:
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=1)
            sock.sendall(self.HEAD)
            return sock
        except OSError:
            return None

    def _run(self) -> None:
        socks = [self._open() for _ in range(self.count)]
        while not self._stop.wait(1.0):
            for i, sock in enumerate(socks):
                try:
                    if sock is None:
                        raise OSError
                    sock.send(b"a")
                except OSError:
                    if sock is not None:
                        sock.close()
                    self.reconnects += 1
                    socks[i] = self._open()
        for sock in socks:
            if sock is not None:
                sock.close()


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
            proc.wait(timeout=scaled(10))
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait_for(url: str, proc: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + scaled(30)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"FHIR server exited: {log_path.read_text()[-2000:]}")
        try:
            if requests.get(url, timeout=scaled(1)).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"FHIR server did not start: {log_path.read_text()[-2000:]}")


class JsonHandler(BaseHTTPRequestHandler):
    """A quiet handler for small in-process test servers: `send_json` answers with a JSON body."""

    def send_json(self, status: int, body: object, content_type: str = "application/fhir+json") -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """`handler` on a loopback port in a thread of this process; yields http://127.0.0.1:PORT."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def signed_config(folder: Path, port: int, **settings: object) -> Path:
    """A config trusting a fresh signing key (deploy/image_probe.py: sign calls with its _bearer)
    for a service reached at 127.0.0.1:port, data in `folder`; more settings as keyword arguments."""
    from deploy.image_probe import keys

    keys(folder, port)
    config = json.loads((folder / "config.yaml").read_text())
    config["security"]["trusted_issuers"][0]["jwks_file"] = str(folder / "jwks.json")
    config.update(data_dir=str(folder / "data"), log_level="WARNING", **settings)
    (folder / "config.yaml").write_text(json.dumps(config))
    return folder / "config.yaml"


def nginx_front(folder: Path, port: int, app_port: int, log: IO[str] | None = None) -> subprocess.Popen:
    """Debian's nginx with the shipped deploy/nginx/nginx.conf, listening on 127.0.0.1:port for
    gunicorn on app_port, its files in `folder` instead of /tmp."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    conf = (Path(__file__).resolve().parents[1] / "deploy" / "nginx" / "nginx.conf").read_text()
    conf = conf.replace("listen 8080", f"listen 127.0.0.1:{port}").replace("127.0.0.1:8081", f"127.0.0.1:{app_port}")
    (folder / "nginx.conf").write_text(conf.replace("/tmp/nginx", str(folder / "nginx")))
    root = ["-g", "daemon off; user root;"] if os.geteuid() == 0 else ["-g", "daemon off;"]
    command = [nginx, "-c", str(folder / "nginx.conf"), "-e", "stderr", *root]
    return subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)


def nginx_installed() -> bool:
    return shutil.which("nginx") is not None or Path("/usr/sbin/nginx").exists()
