"""Every table of the store, in the one metadata the migrations are compared with. Each package
declares its own tables on cds_service.database.Base; this is the one place that gathers them
(the import contract allows it this one upward import, of memory's table)."""

from __future__ import annotations

from sqlalchemy import MetaData

from ...database import Base
from ...memory.store import MemoryEntry
from ...security.jwt_replay import JwtReplay
from ..models import CardIssued, FeedbackItem

TABLES = (CardIssued, FeedbackItem, MemoryEntry, JwtReplay)


def store_metadata() -> MetaData:
    """The metadata of every table above (all declared on the one base)."""
    return Base.metadata
