"""The card spool: a local file for card records that could not reach the store when a worker
stopped, replayed into the store at the next start. Append-only (one JSON line per card), fsynced
before the worker exits, bounded in size; a record that does not fit is counted, never silently
dropped. Replay cannot duplicate: a card uuid already in `cards_issued` is left as it was."""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from .. import metrics
from .store import FeedbackStore

log = logging.getLogger(__name__)
SPOOL_NAME = "cards-spool.jsonl"
MAX_SPOOL_BYTES = 64 * 1024 * 1024  # about 250,000 card records
REPLAY_BATCH = 500


class CardSpool:
    def __init__(self, folder: Path, max_bytes: int = MAX_SPOOL_BYTES) -> None:
        self.path = folder / SPOOL_NAME
        self.max_bytes = max_bytes

    def append(self, rows: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
        """Write rows at the end of the spool and fsync; (written, lost). Workers stopping together
        share the file: each append holds an exclusive lock on it."""
        if not rows:
            return 0, 0
        lines = [(json.dumps(_plain(row), separators=(",", ":")) + "\n").encode() for row in rows]
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with _locked(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT) as spool:
                room = self.max_bytes - os.fstat(spool.fileno()).st_size
                fitting = []
                for line in lines:
                    if len(line) > room:
                        break
                    fitting.append(line)
                    room -= len(line)
                spool.write(b"".join(fitting))
                spool.flush()
                os.fsync(spool.fileno())
            _fsync_folder(self.path.parent)
        except OSError as exc:
            error = type(exc).__name__
            log.error("card spool %s not writable (%s): %d card record(s) lost", self.path, error, len(rows))
            metrics.CARDS_UNRECORDED.labels("spool_unwritable").inc(len(rows))
            return 0, len(rows)
        lost = len(lines) - len(fitting)
        if lost:
            log.error("card spool full (%d bytes): %d card record(s) lost", self.max_bytes, lost)
            metrics.CARDS_UNRECORDED.labels("spool_full").inc(lost)
        metrics.CARDS_SPOOLED.inc(len(fitting))
        return len(fitting), lost

    def replay(self, store: FeedbackStore) -> int:
        """Write every spooled record into the store, then empty the spool; how many were replayed.
        StoreUnavailable leaves the spool as it was, for the next start."""
        if not self.path.exists():
            return 0
        with _locked(self.path, os.O_RDWR) as spool:
            rows, unreadable = [], 0
            for line in spool.read().splitlines():
                try:
                    row = json.loads(line)
                    row["issued_at"] = datetime.fromisoformat(row["issued_at"])
                    rows.append(row)
                except (ValueError, KeyError, TypeError):
                    unreadable += 1  # a line torn by a crash mid-write
            for start in range(0, len(rows), REPLAY_BATCH):
                store.record_cards(rows[start : start + REPLAY_BATCH])  # StoreUnavailable: kept for next time
            spool.truncate(0)
            os.fsync(spool.fileno())
        self.path.unlink(missing_ok=True)
        if unreadable:
            log.error("card spool: %d unreadable record(s) lost", unreadable)
            metrics.CARDS_UNRECORDED.labels("spool_unreadable").inc(unreadable)
        metrics.CARDS_REPLAYED.inc(len(rows))
        log.warning("card spool: %d card record(s) replayed into the store", len(rows))
        return len(rows)


@contextmanager
def _locked(path: Path, flags: int) -> Iterator[IO[bytes]]:
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "r+b" if flags & os.O_RDWR else "ab") as spool:
        fcntl.flock(spool.fileno(), fcntl.LOCK_EX)
        yield spool


def _fsync_folder(folder: Path) -> None:
    """A new file's name is durable only once its folder is synced."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _plain(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}
