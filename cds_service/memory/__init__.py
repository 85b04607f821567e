"""Card memory: say a card once from order-select to order-sign, and honour a snooze (off by default)."""

from .memory import CardMemory, Remembered
from .store import MemoryStore, MemoryUnavailable

__all__ = ["CardMemory", "MemoryStore", "MemoryUnavailable", "Remembered"]
