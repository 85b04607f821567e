"""Card layer: clinical findings -> CDS Hooks 2.0 card JSON."""

from .builder import CardBuilder

__all__ = ["CardBuilder"]
