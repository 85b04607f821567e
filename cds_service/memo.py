"""A bounded memory of values worked out from a key: what repeats across calls (a formulary's orders,
drug names, a site's knowledge) is worked out once. Full, it starts again: simpler than an LRU, and
the keys that matter come straight back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Memo(Generic[K, V]):
    def __init__(self, size: int) -> None:
        self.size = size
        self._values: dict[K, V] = {}

    def get(self, key: K, work_out: Callable[[], V]) -> V:
        """The value remembered for `key`, else `work_out()`, remembered. One lookup on a hit, so a
        clear by another thread in between cannot fail it; two threads may both work out a new key."""
        try:
            return self._values[key]
        except KeyError:
            if len(self._values) >= self.size:
                self._values.clear()
            value = self._values[key] = work_out()
            return value

    def clear(self) -> None:
        self._values.clear()

    def __len__(self) -> int:
        return len(self._values)
