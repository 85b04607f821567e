"""Feedback store: what clinicians did with each card. No patient data and no free text is kept.

SQLite by default (a file in the data folder), any SQLAlchemy URL otherwise (PostgreSQL in
deployments). Repeats of the same (card, outcome, timestamp) are stored once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Integer, String, Text, UniqueConstraint, create_engine, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class FeedbackItem(Base):
    __tablename__ = "feedback"
    __table_args__ = (UniqueConstraint("card_uuid", "outcome", "outcome_timestamp", name="uq_feedback_repeat"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service_id: Mapped[str] = mapped_column(String(100))
    card_uuid: Mapped[str] = mapped_column(String(100), index=True)
    outcome: Mapped[str] = mapped_column(String(20))
    outcome_timestamp: Mapped[str] = mapped_column(String(40))
    accepted_suggestions: Mapped[str] = mapped_column(Text, default="[]")
    override_reason_system: Mapped[str | None] = mapped_column(String(500), nullable=True)
    override_reason_code: Mapped[str | None] = mapped_column(String(200), nullable=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class FeedbackStore:
    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(url, pool_pre_ping=True)
        Base.metadata.create_all(self.engine)

    def add(self, service_id: str, items: Iterable[Mapping[str, Any]]) -> int:
        """Store feedback items; returns how many were new (repeats are acknowledged, not duplicated)."""
        rows = [_row(service_id, item) for item in items]
        insert = (postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert)(FeedbackItem)
        stored = 0
        with self.engine.begin() as conn:
            for row in rows:
                result = conn.execute(insert.values(**row).on_conflict_do_nothing())
                stored += result.rowcount or 0
        return stored

    def count(self) -> int:
        with self.engine.connect() as conn:
            return len(conn.execute(select(FeedbackItem.id)).all())

    def ping(self) -> bool:
        with self.engine.connect() as conn:
            conn.execute(select(1))
        return True


def _row(service_id: str, item: Mapping[str, Any]) -> dict[str, Any]:
    reason = (item.get("overrideReason") or {}).get("reason") or {}
    return {
        "service_id": service_id,
        "card_uuid": item["card"],
        "outcome": item["outcome"],
        "outcome_timestamp": item["outcomeTimestamp"],
        "accepted_suggestions": json.dumps([s["id"] for s in item.get("acceptedSuggestions") or ()]),
        "override_reason_system": reason.get("system"),
        "override_reason_code": reason.get("code"),
        "received_at": datetime.now(UTC),
    }
