"""Each view says who may call it and how its requests are counted, where it is defined: the
JWT check and the request metrics read it from the view (no list of paths kept beside the routes)."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import TypeVar

from flask import current_app, request

F = TypeVar("F", bound=Callable[..., object])
UNMATCHED = "unmatched"


class Access(Enum):
    TOKEN = "token"  # the EHR's JWT (or, with no trusted issuers, a direct loopback caller)
    OPEN = "open"  # anyone: probes, and rule pages a clinician opens from a card with no token


def view(name: str, access: Access = Access.TOKEN) -> Callable[[F], F]:
    """Declare a view's access and the name its requests are counted and logged under."""

    def mark(function: F) -> F:
        function.access = access  # type: ignore[attr-defined]
        function.metric_name = name  # type: ignore[attr-defined]
        return function

    return mark


def _current_view() -> object | None:
    endpoint = request.endpoint  # one trip through the request proxy, not two
    return current_app.view_functions.get(endpoint) if endpoint else None


def access_of_request() -> Access:
    """An unmatched path asks for a token like any other (a 401 before a 404 says nothing)."""
    access = getattr(_current_view(), "access", Access.TOKEN)
    return access if isinstance(access, Access) else Access.TOKEN


def metric_name() -> str:
    name = getattr(_current_view(), "metric_name", UNMATCHED)
    return name if isinstance(name, str) else UNMATCHED
