"""Structured logs: every record is one JSON object on one line, ready for any log shipper.

The request line carries its fields as `record.json_fields`; other records carry their message.
Each record made while a request is handled gets that request's id, so one call can be followed
through the log. Nothing here may add patient data or tokens: callers log ids, counts and codes.
"""

from __future__ import annotations

import logging
import logging.config
import traceback
from datetime import UTC, datetime
from typing import Any

from flask import g, has_request_context

from . import fastjson

QUOTE_LIMIT = 40  # the most a log line quotes of anything a caller sent (a header value, an id)


def clip(value: object, limit: int = QUOTE_LIMIT) -> str:
    """A caller's value shortened for a log line: never more than `limit` characters, printable only."""
    text = str(value)
    if len(text) <= limit and text.isprintable():  # the common case, as the loop below would give it
        return text
    text = "".join(ch if ch.isprintable() else "?" for ch in text[: limit + 1])
    return text if len(text) <= limit else text[: limit - 1] + "…"


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = getattr(g, "request_id", None) if has_request_context() else None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,  # which gunicorn worker
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            line["request_id"] = request_id
        fields = getattr(record, "json_fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        else:
            line["message"] = record.getMessage()
        if record.exc_info and record.exc_info[0]:
            # The type and where it happened, never the exception's message: that may quote a value.
            line["error"] = record.exc_info[0].__name__
            line["where"] = [f"{f.filename}:{f.lineno} {f.name}" for f in traceback.extract_tb(record.exc_info[2])][-8:]
        return fastjson.dumps(line, default=str).decode()


def logging_config(level: str) -> dict[str, Any]:
    """A dictConfig for the service and for gunicorn's own loggers (`logconfig_dict`)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "json",
                "filters": ["request_id"],
            }
        },
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": [], "propagate": True},
            "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": True},
            # Alembic says "Context impl ..." at every schema check (each /readyz): the store logs upgrades itself.
            "alembic": {"level": "WARNING", "handlers": [], "propagate": True},
        },
    }


def configure(level: str) -> None:
    logging.config.dictConfig(logging_config(level))
