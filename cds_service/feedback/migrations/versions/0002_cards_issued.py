"""Cards issued, and the rule id, hook instance and (opt-in) comment on each feedback item.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cards_issued",
        sa.Column("card_uuid", sa.String(100), primary_key=True),
        sa.Column("service_id", sa.String(100), nullable=False),
        sa.Column("hook", sa.String(100), nullable=False),
        sa.Column("hook_instance", sa.String(100), nullable=False),
        sa.Column("rule_id", sa.String(100), nullable=False),
        sa.Column("indicator", sa.String(20), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_cards_issued_issued_at", "cards_issued", ["issued_at"])
    op.create_index("ix_cards_issued_rule_id", "cards_issued", ["rule_id"])
    with op.batch_alter_table("feedback") as batch:
        batch.add_column(sa.Column("rule_id", sa.String(100), nullable=True))
        batch.add_column(sa.Column("hook_instance", sa.String(100), nullable=True))
        batch.add_column(sa.Column("user_comment", sa.Text(), nullable=True))
    op.create_index("ix_feedback_received_at", "feedback", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_feedback_received_at", table_name="feedback")
    with op.batch_alter_table("feedback") as batch:
        batch.drop_column("user_comment")
        batch.drop_column("hook_instance")
        batch.drop_column("rule_id")
    op.drop_index("ix_cards_issued_rule_id", table_name="cards_issued")
    op.drop_index("ix_cards_issued_issued_at", table_name="cards_issued")
    op.drop_table("cards_issued")
