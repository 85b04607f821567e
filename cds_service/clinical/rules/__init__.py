"""Rule families: one module each, pure functions of a RuleContext, each declaring what it says
(family.py) so the knowledge and the code are checked against each other at start."""

from . import conditions, depletion, dosing, interactions, labs, monitoring, renal, risk
from .family import Family

# The order cards come out in, before one_card_per_concern merges them.
FAMILIES: tuple[Family, ...] = (
    renal.FAMILY,
    labs.FAMILY,
    interactions.FAMILY,
    depletion.FAMILY,
    dosing.FAMILY,
    monitoring.FAMILY,
    conditions.FAMILY,
    risk.FAMILY,
)
