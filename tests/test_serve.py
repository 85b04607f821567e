"""The real production server: `cds-service serve` under gunicorn, called over HTTP."""

from __future__ import annotations

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
