"""Feedback store (SQLAlchemy: SQLite by default, PostgreSQL in deployments)."""

from .store import FeedbackStore

__all__ = ["FeedbackStore"]
