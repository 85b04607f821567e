"""The README's shell commands run as written. Every fenced `sh` command is either run here, run by CI
itself (the test command), or needs what a test machine lacks (Docker, a cluster), which the README
says beside it. A new command must be put in one of these, or this test fails."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests
import yaml

from cds_service.config import settings_from_mapping

from .conftest import ROOT, start_service
from .timing import scaled

README = (ROOT / "README.md").read_text(encoding="utf-8")
# Commands that need Docker or a cluster: the README says the test does not run them.
NOT_HERE = ("docker ", "kubectl ", "POSTGRES_PASSWORD=", "cp deploy/config.example.yaml deploy/config.yaml")
BY_CI = ("bash scripts/test.sh",)  # the README's test command: CI (.ci/run) runs it, a test cannot run itself
FIRST = "python3 -m venv .venv && .venv/bin/pip install -q -e . && .venv/bin/cds-service serve"
EVALUATE = ".venv/bin/cds-service evaluate "
CURL = "curl "


def shell_commands(text: str) -> list[str]:
    """Each command of each ```sh block: continuations joined, comments and blank lines dropped."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


COMMANDS = shell_commands(README)


def test_every_readme_command_is_run_here_or_said_to_need_more():
    assert COMMANDS[:2] == [FIRST, "bash scripts/test.sh"], "the README opens with the two commands"
    for command in COMMANDS:
        known = command == FIRST or command.startswith((EVALUATE, CURL, *NOT_HERE, *BY_CI))
        assert known, f"README command not covered by tests/test_readme.py: {command}"
    assert "the README test does not run them" in README  # where the Docker and kubectl commands are


def test_the_evaluate_command_as_written():
    command = next(c for c in COMMANDS if c.startswith(EVALUATE))
    run = subprocess.run(command, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=scaled(120))
    assert run.returncode == 0, run.stderr[-2000:]
    assert "renal-contraindicated" in run.stdout


def test_the_curl_command_against_the_service_started_as_the_readme_says(tmp_path):
    """Started with the README's `serve --now ...` (on a free port instead of 8080, which the first
    command's test needs), then the curl exactly as written but for the port."""
    assert ".venv/bin/cds-service serve --now 2026-11-15T12:00:00Z" in README
    config = tmp_path / "config.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\n")
    proc, base = start_service("--now", "2026-11-15T12:00:00Z", "--config", str(config), cwd=tmp_path)
    try:
        command = next(c for c in COMMANDS if c.startswith(CURL)).replace("http://127.0.0.1:8080", base)
        run = subprocess.run(command, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=scaled(60))
    finally:
        proc.terminate()
        proc.wait(timeout=scaled(30))
    assert run.returncode == 0, run.stderr
    rules = {card["source"]["topic"]["code"] for card in json.loads(run.stdout)["cards"]}
    assert "renal-contraindicated" in rules


def test_the_configuration_example_is_accepted():
    """The README's config block, as a site would copy it (the database URL placeholder aside)."""
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", README, re.S) if "data_dir:" in b)
    raw = yaml.safe_load(block)
    raw.pop("database_url")  # "postgresql://..." stands for a secret
    settings = settings_from_mapping(raw)
    assert settings.knowledge().rules["mg-high"].value("upper_limit") == 2.5


@pytest.mark.slow
def test_the_first_command_on_a_fresh_copy(tmp_path):
    """The README's first command, as written, in a copy of the tracked files: it installs the service
    into a new virtualenv and serves on 127.0.0.1:8080."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 8080)) == 0:
            pytest.fail("port 8080 is in use: the README's first command serves there; free it to run this test")
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    copy = tmp_path / "clone"
    for name in tracked.splitlines():
        if (ROOT / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, copy / name)
    log = (tmp_path / "first-command.log").open("w")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    proc = subprocess.Popen(
        FIRST, shell=True, cwd=copy, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
    )
    try:
        deadline = time.monotonic() + scaled(300)
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if requests.get("http://127.0.0.1:8080/healthz", timeout=scaled(1)).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(1)
        assert proc.poll() is None, Path(log.name).read_text()[-3000:]
        discovery = requests.get("http://127.0.0.1:8080/cds-services", timeout=scaled(5)).json()
        assert {s["id"] for s in discovery["services"]} >= {"magnesium-order-sign", "magnesium-patient-review"}
        assert (copy / "data" / "feedback.sqlite3").exists(), "the SQLite store in ./data"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=scaled(60))
    assert "serving on http://127.0.0.1:8080/cds-services" in Path(log.name).read_text()


def _documented_paths(text: str) -> set[str]:
    """Every key path the README shows: in its YAML blocks (lists as `[]`, the entries of `clients` and
    `memory.rules` as `<>`), or named in backticks in its prose (`fhir.max_pages`)."""
    entries = {"clients", "memory.rules"}  # mappings keyed by the site's own names
    paths: set[str] = set()

    def walk(node, path: str, raw: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                here = f"{path}.<>" if raw in entries else f"{path}.{key}".lstrip(".")
                paths.add(here)
                walk(value, here, f"{raw}.{key}".lstrip("."))
        elif isinstance(node, list):
            for item in node:
                walk(item, f"{path}[]", raw)

    for block in re.findall(r"```yaml\n(.*?)```", text, re.S):
        walk(yaml.safe_load(block), "", "")
    for token in re.findall(r"`([a-z_]+(?:(?:\[\])?\.(?:[a-z_]+|<[^>]+>))*)`", text):
        paths.add(re.sub(r"<[^>]+>", "<>", token))
    return paths


def test_every_accepted_config_key_is_documented_in_the_readme():
    """Before: fhir.max_response_bytes, security.max_token_lifetime_seconds and
    security.clock_skew_seconds were accepted and documented nowhere."""
    from cds_service.config import SECTION_KEYS, TOP_LEVEL_KEYS

    accepted = set(TOP_LEVEL_KEYS) | {f"{section}.{key}" for section, keys in SECTION_KEYS.items() for key in keys}
    accepted = {re.sub(r"<[^>]+>", "<>", key) for key in accepted}
    missing = sorted(accepted - _documented_paths(README))
    assert not missing, f"config keys the README does not document: {missing}"
