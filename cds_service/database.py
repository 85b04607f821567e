"""The store's one SQLAlchemy declarative base: every package declares its own tables on it
(feedback/models.py, memory/store.py, security/jwt_replay.py), so the Alembic migrations and the
schema test see one metadata. The schema itself is built only by the migrations
(feedback/migrations/versions).

Nothing in any table identifies a patient (see each table's docstring)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


def insert_ignoring_repeats(dialect: str, table: Any) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING for the store's two databases (a repeat is not an error)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(table).on_conflict_do_nothing()
