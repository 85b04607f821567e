"""The real production server: `cds-service serve` under gunicorn, called over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from .conftest import SCENARIOS, SERVICE, load_json, start_service, wait_healthy
from .servers import free_port
from .timing import scaled


def test_serve_under_gunicorn_answers_discovery_hooks_and_feedback(tmp_path):
    env = {"CDS_SERVICE_DATA_DIR": str(tmp_path / "data"), "PATH": str(Path(sys.executable).parent)}
    proc, base = start_service("--workers", "2", "--now", "2026-11-15T12:00:00Z", env=env, cwd=tmp_path)
    try:
        services = requests.get(f"{base}/cds-services", timeout=scaled(5)).json()["services"]
        assert {s["hook"] for s in services} == {"order-select", "order-sign", "patient-view"}
        for hook in ("order-select", "order-sign"):
            body = load_json(SCENARIOS / "dialysis-hypomag-iv" / f"request.{hook}.json")
            response = requests.post(f"{base}/cds-services/{SERVICE}", json=body, timeout=scaled(10))
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
        stored = requests.post(f"{base}/cds-services/{SERVICE}/feedback", json=feedback, timeout=scaled(10))
        assert stored.status_code == 200 and stored.json()["stored"] == 1
        assert requests.get(f"{base}/readyz", timeout=scaled(5)).json()["status"] == "ok"
        assert (tmp_path / "data" / "feedback.sqlite3").exists()
        bad = requests.post(
            f"{base}/cds-services/{SERVICE}", data="{", timeout=5, headers={"Content-Type": "application/json"}
        )
        assert bad.status_code == 400 and bad.json()["resourceType"] == "OperationOutcome"
    finally:
        proc.terminate()
        proc.wait(timeout=scaled(20))
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
        assert requests.post(f"{base}/cds-services/{SERVICE}", json=body, timeout=scaled(10)).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=scaled(20))
    assert proc.returncode == 0, proc.log_path.read_text()[-2000:]
    assert {m.name.split(".")[0] for m in marks.iterdir()} == {"worker_exit", "child_exit"}


def _hold(port: int) -> socket.socket | None:
    """Listen on 127.0.0.1:port, as another program would; None when one already does."""
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        return None
    sock.listen()
    return sock


def test_a_taken_default_metrics_port_costs_the_metrics_not_the_start(tmp_path):
    """Before: anything holding 9464 stopped `serve` (and so the README's first command). Now the
    service starts without /metrics and says so in one line naming the flag and the config key."""
    held = _hold(9464)  # taken either by us or by someone else: the service must start either way
    port = free_port()
    env = {**os.environ, "CDS_SERVICE_DATA_DIR": str(tmp_path / "data")}
    log = (tmp_path / "serve.log").open("w")
    exe = Path(sys.executable).with_name("cds-service")
    proc = subprocess.Popen([str(exe), "serve", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        wait_healthy(proc, f"http://127.0.0.1:{port}")
    finally:
        proc.terminate()
        proc.wait(timeout=scaled(20))
        if held:
            held.close()
    lines = [line for line in (tmp_path / "serve.log").read_text().splitlines() if "no /metrics" in line]
    assert len(lines) == 1 and "--metrics-port" in lines[0] and "metrics.port" in lines[0], lines


def test_a_taken_metrics_port_that_was_asked_for_stops_the_start_naming_flag_and_key(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        metrics_port = taken.getsockname()[1]
        config = tmp_path / "config.yaml"
        config.write_text(f"data_dir: {tmp_path / 'data'}\nmetrics: {{port: {metrics_port}}}\n")
        exe = Path(sys.executable).with_name("cds-service")
        for how in (["--metrics-port", str(metrics_port)], ["--config", str(config)]):
            run = subprocess.run(
                [str(exe), "serve", "--port", str(free_port()), *how],
                capture_output=True,
                text=True,
                timeout=scaled(60),
                env={**os.environ, "CDS_SERVICE_DATA_DIR": str(tmp_path / "data")},
            )
            assert run.returncode == 2, run.stderr
            last = run.stderr.strip().splitlines()[-1]
            assert "cannot listen" in last and str(metrics_port) in last, run.stderr
            assert "--metrics-port" in last and "metrics.port" in last, last


@pytest.mark.parametrize(
    ("env", "names"),
    [
        # the README's own placeholder: before, ~40 lines of traceback ending in an idna UnicodeError
        ({"CDS_SERVICE_DATABASE_URL": "postgresql://..."}, ("database_url", "CDS_SERVICE_DATABASE_URL")),
        ({"CDS_SERVICE_DATA_DIR": "/proc/no-such-place"}, ("data_dir", "CDS_SERVICE_DATA_DIR")),
    ],
    ids=["placeholder-database-url", "unusable-data-dir"],
)
def test_a_config_or_environment_problem_at_serve_is_one_line_naming_what_to_change(tmp_path, env, names):
    env = {k: v.format(port=free_port()) for k, v in env.items()}
    exe = Path(sys.executable).with_name("cds-service")
    run = subprocess.run(
        [str(exe), "serve", "--port", str(free_port()), "--metrics-port", "0"],
        capture_output=True,
        text=True,
        timeout=scaled(60),
        env={**os.environ, "CDS_SERVICE_DATA_DIR": str(tmp_path / "data"), **env},
        cwd=tmp_path,
    )
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    lines = [line for line in run.stderr.splitlines() if "WARNING" not in line]
    assert len(lines) == 1 and lines[0].startswith("cds-service: "), run.stderr
    assert all(name in lines[0] for name in names), lines[0]
    assert "s3cret" not in run.stderr


def test_an_unreachable_database_at_serve_is_one_warning_line_and_the_hooks_are_served(tmp_path):
    """Nothing listens at the database URL (before: a SQLAlchemy traceback and no service). The store
    serves feedback and records only: the hooks start (README, Operations), and one line says which
    setting to check, without the password."""
    port, database = free_port(), free_port()
    exe = Path(sys.executable).with_name("cds-service")
    env = {**os.environ, "CDS_SERVICE_DATA_DIR": str(tmp_path / "data"),
           "CDS_SERVICE_DATABASE_URL": f"postgresql://cds:s3cret@127.0.0.1:{database}/cds"}  # fmt: skip
    with subprocess.Popen(
        [str(exe), "serve", "--port", str(port), "--metrics-port", "0"],
        stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path, start_new_session=True,
    ) as process:  # fmt: skip
        try:
            deadline = time.monotonic() + scaled(60)
            ready = None
            while time.monotonic() < deadline and ready is None:
                try:
                    ready = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                except requests.ConnectionError:
                    time.sleep(0.3)
            assert ready is not None and ready.status_code == 200
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            _, stderr = process.communicate(timeout=scaled(30))
    warnings = [line for line in stderr.splitlines() if line.startswith("cds-service:") and "unavailable" in line]
    assert len(warnings) == 1 and "database_url" in warnings[0] and f"127.0.0.1:{database}" in warnings[0], stderr
    assert "Traceback" not in stderr and "s3cret" not in stderr
