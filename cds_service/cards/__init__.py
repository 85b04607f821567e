"""Card layer: clinical findings -> typed CDS Hooks 2.0 cards (JSON only at the edge)."""

from .builder import CardBuilder
from .model import Card, Held, Indicator, IssuedCard

__all__ = ["Card", "CardBuilder", "Held", "Indicator", "IssuedCard"]
