"""What every rule family reads: the record, the knowledge, and facts computed once per request."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from ..knowledge.model import Knowledge, RuleSpec
from ..record.model import MedicationEntry, PatientRecord
from .findings import Finding, SuggestedAction
from .matching import ProductMatch
from .renal_function import RenalAssessment


@dataclass(frozen=True, slots=True)
class RuleContext:
    record: PatientRecord
    knowledge: Knowledge
    magnesium_orders: tuple[tuple[MedicationEntry, ProductMatch], ...]
    renal: RenalAssessment

    def finding(
        self,
        rule_id: str,
        order: MedicationEntry,
        match: ProductMatch,
        *,
        found: tuple[str, ...],
        summary_key: str = "summary",
        **fields: str,
    ) -> Finding:
        """A Finding with the rule's texts, sources and suggestions filled in for this order."""
        spec = self.knowledge.rule(rule_id)
        drug = _short_name(order.name or match.salt_label)
        summary = spec.text[summary_key].format(drug=drug, **fields)
        order_line = f"Order: {drug} ({order.reference}); recognised as {match.salt_label} by {match.how}"
        gaps = tuple(f"Not available: {g.topic} ({g.reason})" for g in self.record.gaps)
        return Finding(
            rule_id=rule_id,
            indicator=spec.indicator,
            order=order,
            summary=summary,
            found=(*found, order_line, *gaps),
            why=spec.text["why"],
            action=spec.text["action"],
            evidence=spec.evidence,
            sources=spec.sources,
            suggestions=tuple(self.suggestions(spec, order, drug)),
            override_reasons=spec.override_reasons,
        )

    def suggestions(self, spec: RuleSpec, order: MedicationEntry, drug: str) -> list[SuggestedAction]:
        now = self.record.now
        out: list[SuggestedAction] = []
        for key in spec.suggestions:
            if key == "remove-order":
                out.append(
                    SuggestedAction(
                        "remove-order",
                        f"Remove the order for {drug}",
                        order=order,
                        recommended=spec.indicator == "critical",
                    )
                )
            elif key == "order-serum-magnesium-now":
                out.append(self._lab("magnesium", "Order serum magnesium now", now))
            elif key == "order-serum-magnesium-recheck":
                days = spec.value("recheck_after_days")
                due = now + timedelta(days=days)
                out.append(self._lab("magnesium", f"Order serum magnesium recheck due {due.date().isoformat()}", due))
            elif key == "order-serum-creatinine":
                out.append(self._lab("creatinine", "Order serum creatinine", now))
            elif key in ("order-potassium-if-missing", "order-calcium-if-missing"):
                analyte = "potassium" if "potassium" in key else "calcium"
                lookback = self.knowledge.lab_lookbacks[f"{analyte}_days"].value
                if self.record.latest(analyte, lookback) is None:
                    out.append(self._lab(analyte, f"Order serum {analyte} (none in the last {lookback:.0f} days)", now))
            else:
                raise ValueError(f"rules.yaml: {spec.id}: unknown suggestion '{key}'")
        return [s for s in out if s is not None and not (s.lab and s.lab in self.record.draft_lab_orders)]

    @staticmethod
    def _lab(analyte: str, label: str, due) -> SuggestedAction:
        return SuggestedAction("order-lab", label, lab=analyte, due=due)


def _short_name(name: str, limit: int = 48) -> str:
    """Drug names go into summaries that must stay under 140 characters."""
    name = " ".join(name.split())
    return name if len(name) <= limit else name[: limit - 1].rstrip() + "…"
