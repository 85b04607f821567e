"""A real PostgreSQL for the store tests: a throwaway cluster on a loopback port in a temp folder,
started once per test session with Debian's binaries (`.ci/run` installs them), or an existing
server named by CDS_TEST_POSTGRES_URL. Each test gets its own fresh database."""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

ADMIN_URL_ENV = "CDS_TEST_POSTGRES_URL"


def binaries() -> Path | None:
    """The newest installed PostgreSQL server's bin folder (Debian layout), or one on PATH."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if versions:
        return versions[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@contextmanager
def cluster(port: int) -> Iterator[str]:
    """initdb + pg_ctl start on 127.0.0.1:port; yields a libpq URL for the superuser; stops and deletes it."""
    bin_dir = binaries()
    assert bin_dir is not None, "PostgreSQL server binaries not found"
    root = Path(tempfile.mkdtemp(prefix="cds-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as the postgres user
        account = pwd.getpwnam("postgres")
        os.chown(root, account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, log = root / "data", root / "server.log"

    def run(*cmd: str) -> None:
        subprocess.run([*as_user, *cmd], check=True, capture_output=True, timeout=120)

    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
    except subprocess.CalledProcessError as exc:
        detail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL did not start: {exc.stderr.decode(errors='replace')} {detail}") from exc
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


def sqlalchemy_url(libpq_url: str) -> str:
    return "postgresql+psycopg://" + libpq_url.split("://", 1)[1]


@contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new, empty database on the server; dropped afterwards (connections and all)."""
    name = f"cds_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def set_connections_allowed(admin_url: str, database_url: str, allowed: bool) -> None:
    """Make a database fail (refuse and cut every connection) or come back: a real outage."""
    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"true" if allowed else "false"}')
        if not allowed:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))


def libpq(sqlalchemy_url_: str) -> str:
    return "postgresql://" + sqlalchemy_url_.split("://", 1)[1]


@contextmanager
def stopped(admin_url: str) -> Iterator[None]:
    """Stop the whole server (pg_ctl stop -m fast: every connection cut, the port closed), then start
    it again with the options it ran with (postmaster.opts) on the way out."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        data = Path(conn.execute("SHOW data_directory").fetchone()[0])
    words = shlex.split((data / "postmaster.opts").read_text())
    options = " ".join(shlex.quote(w) for i, w in enumerate(words[1:], 1) if w != "-D" and words[i - 1] != "-D")
    bin_dir = Path(words[0]).parent
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    pg_ctl = [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-t", "60"]
    subprocess.run([*pg_ctl, "-m", "fast", "stop"], check=True, capture_output=True, timeout=60)
    try:
        yield
    finally:
        log = data.parent / "server.log"
        subprocess.run([*pg_ctl, "-o", options, "-l", str(log), "start"], check=True, capture_output=True, timeout=90)
