"""The real production server: `cds-service serve` under gunicorn, called over HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import requests

from .conftest import SCENARIOS, SERVICE, load_json, start_service


def test_serve_under_gunicorn_answers_discovery_hooks_and_feedback(tmp_path):
    env = {"CDS_SERVICE_DATA_DIR": str(tmp_path / "data"), "PATH": str(Path(sys.executable).parent)}
    proc, base = start_service("--workers", "2", "--now", "2026-11-15T12:00:00Z", env=env, cwd=tmp_path)
    try:
        services = requests.get(f"{base}/cds-services", timeout=5).json()["services"]
        assert {s["hook"] for s in services} == {"order-select", "order-sign", "patient-view"}
        for hook in ("order-select", "order-sign"):
            body = load_json(SCENARIOS / "dialysis-hypomag-iv" / f"request.{hook}.json")
            response = requests.post(f"{base}/cds-services/{SERVICE}", json=body, timeout=10)
            assert response.status_code == 200
            cards = response.json()["cards"]
            assert sorted((c["source"]["topic"]["code"], c["indicator"]) for c in cards) == [
                ("mg-low", "info"),
                ("renal-contraindicated", "warning"),
            ]
        card = next(c for c in cards if c["source"]["topic"]["code"] == "renal-contraindicated")
        feedback = {
            "feedback": [
                {
                    "card": card["uuid"],
                    "outcome": "accepted",
                    "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
                    "outcomeTimestamp": "2026-11-15T12:05:00Z",
                }
            ]
        }
        stored = requests.post(f"{base}/cds-services/{SERVICE}/feedback", json=feedback, timeout=10)
        assert stored.status_code == 200 and stored.json()["stored"] == 1
        assert requests.get(f"{base}/readyz", timeout=5).json()["status"] == "ok"
        assert (tmp_path / "data" / "feedback.sqlite3").exists()
        bad = requests.post(
            f"{base}/cds-services/{SERVICE}", data="{", timeout=5, headers={"Content-Type": "application/json"}
        )
        assert bad.status_code == 400 and bad.json()["resourceType"] == "OperationOutcome"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert proc.returncode == 0, "gunicorn did not shut down cleanly on SIGTERM"


def test_a_port_in_use_stops_the_start_with_one_line_naming_the_flag(tmp_path):
    """Before: 'serving on ...' and then five gunicorn failures. Now one line, before anything starts."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        exe = Path(sys.executable).with_name("cds-service")
        env = {**os.environ, "CDS_SERVICE_DATA_DIR": str(tmp_path / "data")}
        run = subprocess.run(
            [str(exe), "serve", "--port", str(port)], capture_output=True, text=True, timeout=60, env=env
        )
    assert run.returncode == 2
    errors = [line for line in run.stderr.splitlines() if "cannot listen" in line]
    assert len(errors) == 1 and "--port" in errors[0] and str(port) in errors[0], run.stderr
    assert run.stderr.strip().endswith(errors[0]) and "serving on" not in run.stderr  # (after the no-issuer warning)


def test_a_gunicorn_config_with_its_own_exit_hooks_runs_them_beside_the_services(tmp_path):
    """Before: any --gunicorn-config defining worker_exit or child_exit stopped the start with gunicorn's
    'Value must have an arity of: 2' (the chained hook took *args). Now both hooks run, the site's and
    the service's (cards recorded before a worker exits)."""
    marks = tmp_path / "marks"
    marks.mkdir()
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(
        "import os\n"
        f"_MARKS = {str(marks)!r}\n"
        "def worker_exit(server, worker):\n"
        "    open(os.path.join(_MARKS, f'worker_exit.{worker.pid}'), 'w').close()\n"
        "def child_exit(server, worker):\n"
        "    open(os.path.join(_MARKS, f'child_exit.{worker.pid}'), 'w').close()\n"
    )
    env = {"CDS_SERVICE_DATA_DIR": str(tmp_path / "data"), "PATH": str(Path(sys.executable).parent)}
    proc, base = start_service("--workers", "1", "--gunicorn-config", str(conf), env=env, cwd=tmp_path)
    try:
        body = load_json(SCENARIOS / "dialysis-hypomag-iv" / "request.order-sign.json")
        assert requests.post(f"{base}/cds-services/{SERVICE}", json=body, timeout=10).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert proc.returncode == 0, proc.log_path.read_text()[-2000:]
    assert {m.name.split(".")[0] for m in marks.iterdir()} == {"worker_exit", "child_exit"}
