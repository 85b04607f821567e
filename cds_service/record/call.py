"""The hook call as the record layer reads it: what the EHR sent about the patient and the draft
orders. Declared here, below the protocol layer, so the record and the clinical core depend on the
fields they read and not on how a request is parsed; `protocol.request.HookRequest` is one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class HookCall(Protocol):
    @property
    def hook(self) -> str: ...
    @property
    def orders_drafted(self) -> bool:
        """The EHR sends draft orders (order-select, order-sign); a chart opening (patient-view) does not."""
        ...

    @property
    def patient_id(self) -> str: ...
    @property
    def user_id(self) -> str | None: ...
    @property
    def encounter_id(self) -> str | None: ...
    @property
    def draft_orders(self) -> tuple[Mapping[str, Any], ...]: ...
    @property
    def draft_medications(self) -> Mapping[str, Mapping[str, Any]]: ...
    @property
    def prefetch(self) -> Mapping[str, Any]: ...

    def in_scope(self, resource: Mapping[str, Any]) -> bool:
        """Whether the hook speaks about this draft order (order-select: the selected ones only)."""
        ...
