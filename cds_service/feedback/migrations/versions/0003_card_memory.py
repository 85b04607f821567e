"""Card memory (keyed hashes only) and cards held back by it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "card_memory",
        sa.Column("key", sa.String(120), primary_key=True),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("rule_id", sa.String(100), nullable=True),
        sa.Column("patient", sa.String(64), nullable=True),
        sa.Column("product", sa.String(64), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_card_memory_expires_at", "card_memory", ["expires_at"])
    with op.batch_alter_table("cards_issued") as batch:
        batch.add_column(sa.Column("held_back", sa.String(20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cards_issued") as batch:
        batch.drop_column("held_back")
    op.drop_index("ix_card_memory_expires_at", table_name="card_memory")
    op.drop_table("card_memory")
