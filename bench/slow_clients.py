"""Slow clients against the three fronts the service could have (issue 28): gunicorn alone (the
image's 2 workers x 8 threads), gunicorn behind the shipped nginx sidecar (deploy/nginx/nginx.conf),
and granian serving the same WSGI app (2 workers x 8 blocking threads). For each: N connections
send a request's headers a byte a second (reconnecting when the front closes them), and meanwhile
one client makes normal hook calls and /healthz probes in turn, each with a 2 s timeout.

Loopback only, bounded: at most 500 slow connections and 60 s a front.

    .venv/bin/python bench/slow_clients.py                  # 200 slow connections, 15 s a front
    .venv/bin/python bench/slow_clients.py --slow 0         # the same fronts unloaded, for reference
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import percentile, write_result
from deploy.image_probe import _bearer
from tests.servers import SlowClients, free_port, nginx_front, signed_config

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "fixtures" / "scenarios" / "dialysis-hypomag-iv" / "request.order-sign.json"
HOOK = "/cds-services/magnesium-order-sign"
FRONTS = ("gunicorn", "nginx", "granian")
GRANIAN_APP = """
from cds_service.app import create_app
from cds_service.config import load_settings
app = create_app(load_settings({config!r}))
"""


def start_front(front: str, port: int, work: Path, env: dict[str, str]) -> list[subprocess.Popen]:
    config = signed_config(work, port, metrics={"port": 0})  # signed calls, as behind any front an EHR reaches
    exe = Path(sys.executable).with_name
    log = (work / f"{front}.log").open("w")
    serve = [str(exe("cds-service")), "serve", "--workers", "2", "--threads", "8", "--config", str(config)]
    if front == "gunicorn":
        return [_start([*serve, "--port", str(port)], log, env)]
    if front == "nginx":
        upstream = free_port()
        app = _start([*serve, "--port", str(upstream)], log, env)
        front_proc = nginx_front(work, port, upstream, log)
        return [app, front_proc]
    (work / "granian_app.py").write_text(GRANIAN_APP.format(config=str(config)))
    granian = [str(exe("granian")), "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(port)]
    granian += ["--workers", "2", "--blocking-threads", "8", "--working-dir", str(work), "granian_app:app"]
    return [_start(granian, log, env)]


def _start(command: list[str], log: IO[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(command, stdout=log, stderr=log, env=env, start_new_session=True)


def stop(procs: list[subprocess.Popen]) -> None:
    """Each front in its own session: stop its whole group (granian's workers outlive a killed main)."""
    for proc in reversed(procs):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def wait_up(base: str, procs: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        if any(p.poll() is not None for p in procs):
            break
        time.sleep(0.2)
    raise RuntimeError(f"{base} did not start")


def measure(base: str, seconds: float, work: Path) -> dict:
    body = SCENARIO.read_bytes()
    calls, probes = [], []
    session = requests.Session()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for kind, out in (("call", calls), ("probe", probes)):
            started = time.monotonic()
            try:
                if kind == "call":
                    headers = {"Content-Type": "application/json", **_bearer(work, base, HOOK)}
                    response = session.post(f"{base}{HOOK}", data=body, headers=headers, timeout=2)
                    ok = response.status_code == 200 and len(response.json()["cards"]) == 2
                else:
                    ok = session.get(f"{base}/healthz", timeout=2).status_code == 200
            except requests.RequestException:
                ok = False
                session = requests.Session()
            out.append((ok, time.monotonic() - started))
    return {name: _figures(values) for name, values in (("hook_calls", calls), ("healthz", probes))}


def _figures(values: list[tuple[bool, float]]) -> dict:
    ok = [s for good, s in values if good]
    return {
        "answered_within_2s": len(ok),
        "tried": len(values),
        "p50_ms": round(percentile(ok, 0.5) * 1000, 1) if ok else None,
        "max_ms": round(max(ok) * 1000, 1) if ok else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slow", type=int, default=200, help="slow connections (at most 500)")
    parser.add_argument("--seconds", type=float, default=15, help="measuring time per front (at most 60)")
    parser.add_argument("--fronts", default=",".join(FRONTS))
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "slow_clients.json")
    args = parser.parse_args()
    slow, seconds = min(args.slow, 500), min(args.seconds, 60)
    results = {}
    for front in args.fronts.split(","):
        work = Path(tempfile.mkdtemp(prefix=f"slow-{front}-"))
        port = free_port()
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
        procs = start_front(front, port, work, env)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_up(base, procs)
            with SlowClients(port, slow) as clients:
                time.sleep(2)  # let them take what they can
                figures = measure(base, seconds, work)
            figures["slow_connections"] = slow
            figures["slow_reconnects"] = clients.reconnects
            results[front] = figures
            print(front, json.dumps(figures), flush=True)
        finally:
            stop(procs)
            shutil.rmtree(work, ignore_errors=True)
    write_result(args.output, {"slow": slow, "seconds": seconds, "fronts": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
