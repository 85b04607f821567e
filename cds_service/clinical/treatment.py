"""What the patient is being treated for, read once per request: it changes what a card should say.

Renal rules on a patient with documented hypomagnesaemia say "reduce the dose and check the level"
instead of "remove"; parenteral magnesium sulfate in pregnancy (pre-eclampsia, eclampsia, preterm labour:
conditions.yaml obstetric_mgso4, on the problem list or the order's reasonCode) is judged against the
obstetric therapeutic range.
"""

from __future__ import annotations

from ..immutable import immutable
from ..knowledge.model import Knowledge
from ..record.model import ConditionEntry, LabValue, MedicationEntry
from .magnesium_level import MagnesiumLevel
from .problems import Problems, code_match, how_found, text_match


@immutable
class TreatmentContext:
    low_magnesium: LabValue | None  # the latest usable level in the lookback, when it is low
    hypomagnesaemia: ConditionEntry | None  # on the problem list
    obstetric: ConditionEntry | None  # an obstetric indication for magnesium sulfate on the problem list
    found: tuple[str, ...] = ()

    @property
    def fact(self) -> str:
        """For a card's "Found:" line: what documents the treatment context, with its date."""
        parts = []
        if self.low_magnesium is not None:
            parts.append(f"Low serum Mg {self.low_magnesium.stated()}")
        elif self.hypomagnesaemia is not None:
            parts.append(f"{self.hypomagnesaemia.label[:40]} on the problem list")
        if self.obstetric is not None:
            parts.append(f"{self.obstetric.label[:40]} on the problem list")
        return "; ".join(parts)

    @property
    def treating_low(self) -> bool:
        """Documented hypomagnesaemia: a low level in the lookback, or the coded condition."""
        return self.low_magnesium is not None or self.hypomagnesaemia is not None


def read_treatment(knowledge: Knowledge, level: MagnesiumLevel, problems: Problems) -> TreatmentContext:
    current = level.current(knowledge.lab_lookbacks["magnesium_days"].value)
    low = current if level.low and level.plausible else None
    hypo_set, pre_set = knowledge.conditions["hypomagnesaemia"], knowledge.conditions["obstetric_mgso4"]
    hypo, pre = problems.of("hypomagnesaemia"), problems.of("obstetric_mgso4")
    found = []
    if low is not None:
        found.append(f"Documented hypomagnesaemia: serum magnesium {low.shown()}")
    elif hypo is not None:
        found.append(f"Documented hypomagnesaemia: found on the {how_found(hypo, hypo_set)}")
    if pre is not None:
        found.append(f"Obstetric indication for magnesium sulfate: found on the {how_found(pre, pre_set)}")
    return TreatmentContext(low, hypo, pre, tuple(found))


def obstetric_reason(entry: MedicationEntry, knowledge: Knowledge) -> str | None:
    """The order's own reasonCode, when it names an obstetric indication for magnesium sulfate (coded, or as
    text when uncoded): the line the card shows, else None."""
    condition_set = knowledge.conditions["obstetric_mgso4"]
    for reason in entry.reasons:
        text = reason.text or next((c.display for c in reason.codings if c.display), "")
        if code_match(reason, condition_set) is not None or (not reason.codings and text_match(text, condition_set)):
            codes = ", ".join(f"{c.code}" for c in reason.codings if c.code)
            return f"Obstetric indication on the order (reasonCode): {text}" + (f" ({codes})" if codes else "")
    return None
