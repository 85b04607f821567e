"""Knowledge tables (YAML data with sources) and their typed, validated view."""

from .loader import KnowledgeError, load_knowledge
from .model import Knowledge, Parameter, RuleSpec

__all__ = ["Knowledge", "KnowledgeError", "Parameter", "RuleSpec", "load_knowledge"]
