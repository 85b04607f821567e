"""memo.Memo: the one bounded memory the record, the engine, the drug matcher and the knowledge loader use."""

from __future__ import annotations

import pytest

from cds_service.memo import Memo

pytestmark = pytest.mark.unit


def test_a_value_is_worked_out_once_none_included():
    calls: list[str] = []
    memo: Memo[str, str | None] = Memo(8)

    def work_out(key: str) -> str | None:
        calls.append(key)
        return None if key == "none" else key.upper()

    assert [memo.get(k, lambda k=k: work_out(k)) for k in ("a", "none", "a", "none")] == ["A", None, "A", None]
    assert calls == ["a", "none"]


def test_a_full_memory_starts_again():
    memo: Memo[int, int] = Memo(2)
    for key in (1, 2, 3):
        memo.get(key, lambda key=key: key * 10)
    assert len(memo) == 1  # 1 and 2 filled it; 3 found it full and started again
    assert memo.get(1, lambda: -1) == -1  # 1 was forgotten
