"""Feedback store: cards issued, clinicians' responses, per-rule report."""

from .store import FeedbackStore, StoredFeedback, StoreUnavailable

__all__ = ["FeedbackStore", "StoreUnavailable", "StoredFeedback"]
