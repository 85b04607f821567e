"""The feedback tables (cards issued, feedback), as SQLAlchemy 2 models on the store's one base
(cds_service/database.py). The schema itself is built only by the Alembic migrations in
`migrations/versions`; a test checks the two agree.

Nothing here identifies a patient: a card is known by its uuid, the rule that raised it and the hook
instance (the EHR's id for one hook call); feedback by its outcome and the coded override reason.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..database import Base


class CardIssued(Base):
    """One card returned to an EHR, so feedback about it can be joined to its rule."""

    __tablename__ = "cards_issued"
    __table_args__ = (Index("ix_cards_issued_issued_at", "issued_at"), Index("ix_cards_issued_rule_id", "rule_id"))

    card_uuid: Mapped[str] = mapped_column(String(100), primary_key=True)
    service_id: Mapped[str] = mapped_column(String(100))
    hook: Mapped[str] = mapped_column(String(100))
    hook_instance: Mapped[str] = mapped_column(String(100))
    rule_id: Mapped[str] = mapped_column(String(100))
    indicator: Mapped[str] = mapped_column(String(20))
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Set for a card the rules raised but card memory kept from the EHR ("shown-at-select", "snoozed"):
    # counted apart, never as issued.
    held_back: Mapped[str | None] = mapped_column(String(20), nullable=True)
    # How the card's orders were read, its variant and the data gaps (cards/explain.py for_the_record):
    # codes only, nothing about the patient.
    explanation: Mapped[str | None] = mapped_column(Text, nullable=True)


class FeedbackItem(Base):
    """What a clinician did with a card. Repeats of (card, outcome, timestamp) are stored once."""

    __tablename__ = "feedback"
    __table_args__ = (
        UniqueConstraint("card_uuid", "outcome", "outcome_timestamp", name="uq_feedback_repeat"),
        Index("ix_feedback_card_uuid", "card_uuid"),
        Index("ix_feedback_received_at", "received_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service_id: Mapped[str] = mapped_column(String(100))
    card_uuid: Mapped[str] = mapped_column(String(100))
    rule_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    hook_instance: Mapped[str | None] = mapped_column(String(100), nullable=True)
    outcome: Mapped[str] = mapped_column(String(20))
    outcome_timestamp: Mapped[str] = mapped_column(String(40))
    accepted_suggestions: Mapped[str] = mapped_column(Text, default="[]")
    override_reason_system: Mapped[str | None] = mapped_column(String(500), nullable=True)
    override_reason_code: Mapped[str | None] = mapped_column(String(200), nullable=True)
    user_comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
