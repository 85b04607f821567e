"""Errors a client caused, answered as 4xx with an OperationOutcome that names the field and problem."""

from __future__ import annotations

from typing import Any

ISSUE_CODES = {
    400: "invalid",
    401: "login",
    404: "not-found",
    405: "not-supported",
    412: "incomplete",
    413: "too-costly",
    415: "not-supported",
    503: "transient",
}


class ProtocolError(Exception):
    def __init__(self, status: int, field: str | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.field = field
        self.message = message

    def body(self) -> dict[str, Any]:
        return operation_outcome(self.status, self.message, self.field)


def operation_outcome(status: int, message: str, field: str | None = None) -> dict[str, Any]:
    issue: dict[str, Any] = {
        "severity": "error",
        "code": ISSUE_CODES.get(status, "processing"),
        "diagnostics": f"{field}: {message}" if field else message,
    }
    if field:
        issue["expression"] = [field]
    return {"resourceType": "OperationOutcome", "issue": [issue]}
