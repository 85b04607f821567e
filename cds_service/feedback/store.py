"""The store: cards issued and what clinicians did with them. No patient data is kept, and no free
text unless `feedback.keep_user_comments` is configured.

SQLite by default (a file in the data folder), PostgreSQL (psycopg 3) when `database_url` is set.
Every write is one transaction, and feedback is acknowledged only after it commits, so a failing
database loses nothing it acknowledged; callers see `StoreUnavailable` and answer 503.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from .. import metrics
from ..database import insert_ignoring_repeats
from . import connections, migrate
from .models import CardIssued, FeedbackItem

log = logging.getLogger(__name__)


class StoreUnavailable(RuntimeError):
    """The database could not be reached or did not commit; nothing was stored."""


@dataclass(frozen=True, slots=True)
class StoredFeedback:
    """A feedback item newly stored (not a repeat): what the metrics count."""

    rule_id: str | None
    outcome: str
    reason_code: str | None
    first_for_card: bool = True  # the card's first answer (metrics count cards once; the report, latest)


class FeedbackStore:
    def __init__(self, url: str, keep_user_comments: bool = False, pool_size: int = 5) -> None:
        """`pool_size`: PostgreSQL connections this process may hold (connections.pool_size)."""
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = connections.make_engine(url, pool_size)
        self.keep_user_comments = keep_user_comments

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def ensure_schema(self) -> None:
        """Migrate to the newest schema unless it already is (the common case: a cheap read);
        StoreUnavailable when the database cannot be reached (no deadline: a migration takes its time)."""
        with _unavailable_on_error(deadline=False):
            if migrate.current_revision(self.engine) != migrate.head_revision():
                before, after = migrate.upgrade(self.engine)
                if before != after:
                    log.info("store (%s): schema upgraded from %s to %s", self.dialect, before or "empty", after)

    def record_cards(self, cards: Sequence[Mapping[str, Any]]) -> None:
        """Insert rows for `cards_issued`; a card uuid already there is left as it was."""
        if not cards:
            return
        with _unavailable_on_error(), self.engine.begin() as conn:
            conn.execute(insert_ignoring_repeats(self.dialect, CardIssued), list(cards))
            # Feedback can overtake its card (recorded in the background): complete such rows now.
            issued = select(CardIssued).where(CardIssued.card_uuid == FeedbackItem.card_uuid)
            conn.execute(
                update(FeedbackItem)
                .where(FeedbackItem.rule_id.is_(None), FeedbackItem.card_uuid.in_([c["card_uuid"] for c in cards]))
                .values(
                    rule_id=issued.with_only_columns(CardIssued.rule_id).scalar_subquery(),
                    hook_instance=issued.with_only_columns(CardIssued.hook_instance).scalar_subquery(),
                )
            )

    def add(self, service_id: str, items: Iterable[Mapping[str, Any]]) -> list[StoredFeedback]:
        """Store feedback items; returns those that were new (repeats are acknowledged, not duplicated)."""
        items = list(items)
        received_at = datetime.now(UTC)
        stored: list[StoredFeedback] = []
        with _unavailable_on_error(), self.engine.begin() as conn:
            uuids = {item["card"] for item in items}
            issued = {
                row.card_uuid: row
                for row in conn.execute(
                    select(CardIssued.card_uuid, CardIssued.rule_id, CardIssued.hook_instance).where(
                        CardIssued.card_uuid.in_(uuids)
                    )
                )
            }
            answered = set(
                conn.execute(select(FeedbackItem.card_uuid).where(FeedbackItem.card_uuid.in_(uuids)).distinct())
                .scalars()
                .all()
            )
            for item in items:
                row = self._row(service_id, item, issued.get(item["card"]), received_at)
                insert = insert_ignoring_repeats(self.dialect, FeedbackItem).values(**row)
                # RETURNING, not rowcount: rowcount is not reliable for ON CONFLICT across drivers.
                if conn.execute(insert.returning(FeedbackItem.id)).first() is not None:
                    first = item["card"] not in answered
                    answered.add(item["card"])
                    stored.append(StoredFeedback(row["rule_id"], row["outcome"], row["override_reason_code"], first))
        return stored

    def count(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(FeedbackItem)).scalar_one()

    def ping(self) -> None:
        """Raises StoreUnavailable unless the database answers, takes writes and its schema is current."""
        with _unavailable_on_error():
            revision = migrate.current_revision(self.engine)
            with self.engine.connect() as conn:
                if self.dialect == "sqlite":  # a file opened read-only refuses a write (rolled back)
                    conn.exec_driver_sql("UPDATE alembic_version SET version_num = version_num")
                    conn.rollback()
                elif conn.execute(text("SHOW transaction_read_only")).scalar_one() == "on":
                    raise StoreUnavailable("read-only (a standby?)")
        if revision != migrate.head_revision():
            # A store that was down when the service started: it gets its schema now.
            try:
                self.ensure_schema()
            except StoreUnavailable:
                metrics.STORE_UP.set(0)
                raise StoreUnavailable(f"schema at revision {revision}, expected {migrate.head_revision()}") from None

    def _row(self, service_id: str, item: Mapping[str, Any], issued: Any, received_at: datetime) -> dict[str, Any]:
        reason, coding = override_reason_of(item)
        return {
            "service_id": service_id,
            "card_uuid": item["card"],
            "rule_id": issued.rule_id if issued else None,
            "hook_instance": issued.hook_instance if issued else None,
            "outcome": item["outcome"],
            "outcome_timestamp": item["outcomeTimestamp"],
            "accepted_suggestions": json.dumps([s["id"] for s in item.get("acceptedSuggestions") or ()]),
            "override_reason_system": coding.get("system"),
            "override_reason_code": coding.get("code"),
            "user_comment": reason.get("userComment") if self.keep_user_comments else None,
            "received_at": received_at,
        }


def override_reason_of(item: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """(overrideReason, its Coding) from every shape EHRs send: the spec's `overrideReason`, a plural
    `overrideReasons` list (of overrideReason objects or of Codings), or a Coding inside `extension`."""
    reason = item.get("overrideReason")
    if isinstance(reason, Mapping) and isinstance(reason.get("reason"), Mapping):
        return reason, reason["reason"]
    for candidate in item.get("overrideReasons") or ():
        if isinstance(candidate, Mapping) and isinstance(candidate.get("reason"), Mapping):
            return candidate, candidate["reason"]
        if isinstance(candidate, Mapping) and isinstance(candidate.get("code"), str):
            return {}, candidate
    coding = _coding_in(item.get("extension"))
    return (reason if isinstance(reason, Mapping) else {}), coding or {}


def _coding_in(value: Any, depth: int = 0) -> Mapping[str, Any] | None:
    """The first Coding-shaped object ({code, system}) in an extension tree, a few levels deep at most."""
    if depth > 4:
        return None
    if isinstance(value, Mapping):
        if isinstance(value.get("code"), str) and isinstance(value.get("system"), str):
            return value
        values: Iterable[Any] = value.values()
    elif isinstance(value, list):
        values = value
    else:
        return None
    return next((c for v in values if (c := _coding_in(v, depth + 1)) is not None), None)


@contextmanager
def _unavailable_on_error(deadline: bool = True) -> Iterator[None]:
    """Any database error becomes StoreUnavailable, naming only the error type (never row data); the
    outcome sets `cds_store_up`."""
    try:
        with connections.operation() if deadline else nullcontext():
            yield
    except StoreUnavailable:
        metrics.STORE_UP.set(0)
        raise
    except (SQLAlchemyError, OSError) as exc:
        metrics.STORE_UP.set(0)
        raise StoreUnavailable(type(getattr(exc, "orig", None) or exc).__name__) from exc
    metrics.STORE_UP.set(1)
