"""One setting for every deadline the tests wait on, so a loaded machine gives no false red.

`CDS_TEST_TIME_SCALE` (a number, default 1) multiplies them all: how long a started server may take
to answer, the FHIR timeout and deadline of the apps the tests build (unless a test sets its own,
to test them), request timeouts to started servers, graceful stops. CI sets 3 (`.ci/run`). A test
that measures a deadline of the code under test keeps its own numbers: only waits are scaled.
"""

from __future__ import annotations

import os

ENV = "CDS_TEST_TIME_SCALE"


def _scale() -> float:
    raw = os.environ.get(ENV) or "1"
    try:
        value = float(raw)
    except ValueError:
        raise SystemExit(f"{ENV}={raw!r}: must be a number such as 1 or 3") from None
    if not 0.1 <= value <= 100:
        raise SystemExit(f"{ENV}={raw!r}: must be from 0.1 to 100")
    return value


TIME_SCALE = _scale()


def scaled(seconds: float) -> float:
    """A wait of `seconds` on an idle machine, widened by CDS_TEST_TIME_SCALE."""
    return seconds * TIME_SCALE
