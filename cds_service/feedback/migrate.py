"""Schema migrations with Alembic, safe to start from several replicas at once.

On PostgreSQL a transaction-scoped advisory lock serialises concurrent upgrades (every replica of a
Deployment starts at the same moment); the loser finds the schema current and does nothing. A store
made by the first releases (tables, no `alembic_version`) is stamped at 0001 and upgraded from there.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
ADVISORY_LOCK_KEY = 0x6D67_6364  # "mgcd": one lock id for this service's migrations
FIRST_RELEASE_REVISION = "0001"


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@cache
def head_revision() -> str:
    """The newest revision shipped; read from the scripts once per process (readiness asks often)."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migrations found"
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, target: str = "head") -> tuple[str | None, str | None]:
    """Bring the schema to `target`; returns (revision before, revision after)."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
        before = MigrationContext.configure(conn).get_current_revision()
        config = alembic_config(conn)
        if before is None and inspect(conn).has_table("feedback"):
            command.stamp(config, FIRST_RELEASE_REVISION)
        command.upgrade(config, target)
        return before, MigrationContext.configure(conn).get_current_revision()


def downgrade(engine: Engine, target: str) -> None:
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), target)
