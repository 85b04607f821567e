"""Card memory for one hook call: which cards the EHR has already shown, which are snoozed.

- A card shown at order-select is not shown again at order-sign for the same clinician, patient,
  encounter, rule and order (the medication's identity and its dosage: a changed dose is a new
  order) and the same facts (the card's summary and what it found: a new lab or a new renal tier
  makes it new) within the rule's window. Critical cards are always shown again.
- Feedback that overrides a card with a snooze reason keeps that rule silent for that patient and
  product, for every clinician, for the reason's days. Feedback names only the card's uuid, so each
  returned card's rule, patient and product are kept (as keyed hashes) from the hook call.

Every key and every patient or product column is an HMAC with the site's secret: the table names no
patient, clinician or drug in the clear. A database that fails means no memory for that call, never
a failed hook call.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import orjson

from .. import metrics
from ..cards.model import Card, Coding, Held, HeldBack, Indicator, IssuedCard, Source
from ..clinical.findings import Finding
from ..config import MemorySettings
from ..feedback.store import override_reason_of
from ..immutable import immutable
from ..knowledge.model import Knowledge
from ..protocol.services import Hook
from ..random_ids import new_uuid
from ..record.model import MedicationEntry, PatientRecord
from .store import MemoryStore, MemoryUnavailable

log = logging.getLogger(__name__)
EXTENSION = "mg-cds.memory"
SHOWN_AT_SELECT, SNOOZED = HeldBack.SHOWN_AT_SELECT, HeldBack.SNOOZED
CARD_DAYS = 7.0  # how long a returned card's subject is kept for feedback that may snooze it
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


@immutable
class Remembered:
    """What memory made of one call's cards."""

    shown: list[IssuedCard]  # to return, with the snooze reasons offered
    held: list[Held]  # kept from the EHR (SHOWN_AT_SELECT | SNOOZED)
    info: Card | None  # the note that some were held back (when the site asks for it)
    counts: dict[str, int] | None  # the response extension; None: nothing to say, or the database failed


@immutable
class _Subject:
    shown: str  # the select -> sign key
    snooze: str  # the (patient, rule, product) key
    patient: str
    product: str


class CardMemory:
    def __init__(self, settings: MemorySettings, knowledge: Knowledge, store: MemoryStore, source_label: str) -> None:
        self.settings = settings
        self.knowledge = knowledge
        self.store = store
        self.source_label = source_label
        self._secret = settings.secret.encode()
        self._snooze_reasons = tuple(
            Coding(knowledge.override_reason_system, code, knowledge.override_reasons[code])
            for code in knowledge.snooze_days
        )

    def apply(self, record: PatientRecord, hook: Hook, issued: list[IssuedCard], now: datetime) -> Remembered:
        """The cards to return and those held back; the database failing means every card is returned."""
        subjects = [self._subject(record, each.finding) for each in issued]
        try:
            alive = self.store.alive(
                [*(s.snooze for s in subjects), *(s.shown for s in subjects if hook.recalls_shown)], now
            )  # (the keys carry their kind: "snooze:...", "shown:...")
        except MemoryUnavailable as exc:  # every card shown, the same shape (a snooze is then simply not kept)
            self._unavailable("read", exc)
            return Remembered([self._with_snooze_reasons(c) for c in issued], [], None, None)
        shown: list[tuple[IssuedCard, _Subject]] = []
        held: list[Held] = []
        for each, subject in zip(issued, subjects, strict=True):
            critical = each.card.indicator is Indicator.CRITICAL
            if not critical and subject.snooze in alive:
                held.append(Held(each, SNOOZED))
            elif not critical and hook.recalls_shown and subject.shown in alive:
                held.append(Held(each, SHOWN_AT_SELECT))
            else:
                shown.append((each, subject))
        try:
            self.store.put(self._rows(hook, shown, now))
        except MemoryUnavailable as exc:
            self._unavailable("write", exc)  # the cards stand; only their memory is lost
        counts = {"held_back": len(held)}
        for reason in (SHOWN_AT_SELECT, SNOOZED):
            counts[reason.value] = sum(1 for h in held if h.reason == reason)
        info = self._info_card(counts) if held and self.settings.info_card else None
        return Remembered([self._with_snooze_reasons(each) for each, _ in shown], held, info, counts)

    def snooze(self, items: Iterable[Mapping[str, Any]], now: datetime) -> int:
        """Feedback overriding a card with a snooze reason: that rule is silent for that patient and
        product for the reason's days. How many snoozes were set."""
        wanted: dict[str, float] = {}
        for item in items:
            code = _reason_code(item)
            if item.get("outcome") == "overridden" and code is not None and code in self.knowledge.snooze_days:
                wanted[f"card:{item['card']}"] = self.knowledge.snooze_days[code]
        if not wanted:
            return 0
        try:
            cards = self.store.alive(wanted, now)
            rows = [
                {
                    "key": f"snooze:{self._hash(row.patient or '', row.rule_id or '', row.product or '')}",
                    "kind": "snooze",
                    "rule_id": row.rule_id,
                    "patient": row.patient,
                    "product": row.product,
                    "expires_at": now + timedelta(days=wanted[key]),
                }
                for key, row in cards.items()
            ]
            self.store.put(rows)
        except MemoryUnavailable as exc:
            self._unavailable("snooze", exc)
            return 0
        return len(rows)

    def _subject(self, record: PatientRecord, finding: Finding) -> _Subject:
        patient = self._hash("patient", record.patient_id)
        product = self._hash("product", *(part for order in finding.orders for part in _identity(order)))
        facts = "\n".join([finding.summary, *finding.audit])
        dosages = [o.resource.get("dosageInstruction") for o in finding.orders]
        order = orjson.dumps(dosages[0] if len(dosages) == 1 else dosages, option=orjson.OPT_SORT_KEYS).decode()
        shown = self._hash(
            record.user_id or "", patient, record.encounter_id or "", finding.rule_id, product, order, facts
        )
        snooze = f"snooze:{self._hash(patient, finding.rule_id, product)}"
        return _Subject(f"shown:{shown}", snooze, patient, product)

    def _rows(self, hook: Hook, shown: list[tuple[IssuedCard, _Subject]], now: datetime) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for each, subject in shown:
            rule_id = each.rule_id
            rows.append(
                {
                    "key": f"card:{each.card.uuid}",
                    "kind": "card",
                    "rule_id": rule_id,
                    "patient": subject.patient,
                    "product": subject.product,
                    "expires_at": now + timedelta(days=CARD_DAYS),
                }
            )
            if hook.remembers_shown and each.card.indicator is not Indicator.CRITICAL:
                window = timedelta(minutes=self.settings.window(rule_id))
                rows.append(
                    {"key": subject.shown, "kind": "shown", "rule_id": rule_id, "patient": None,
                     "product": None, "expires_at": now + window}
                )  # fmt: skip
        return rows

    def _with_snooze_reasons(self, issued: IssuedCard) -> IssuedCard:
        card = issued.card
        if card.indicator is Indicator.CRITICAL or not self._snooze_reasons:
            return issued
        return replace(issued, card=replace(card, override_reasons=(*card.override_reasons, *self._snooze_reasons)))

    def _info_card(self, counts: Mapping[str, int]) -> Card:
        parts = []
        if counts[SHOWN_AT_SELECT]:
            parts.append(f"{counts[SHOWN_AT_SELECT]} shown at order selection")
        if counts[SNOOZED]:
            parts.append(f"{counts[SNOOZED]} snoozed for this patient")
        return Card(
            uuid=new_uuid(),
            summary=f"{counts['held_back']} magnesium alert(s) not repeated: {', '.join(parts)}"[:139],
            indicator=Indicator.INFO,
            detail="Card memory held these back; a changed dose or new results would show them again.",
            source=Source(self.source_label),
        )

    def _unavailable(self, operation: str, exc: MemoryUnavailable) -> None:
        log.warning("card memory unavailable (%s on %s): every card is shown", exc, operation)
        metrics.STORE_ERRORS.labels(f"memory-{operation}").inc()

    def _hash(self, *parts: str) -> str:
        return hmac.new(self._secret, "\x1f".join(parts).encode(), hashlib.sha256).hexdigest()


def _identity(order: MedicationEntry) -> tuple[str, ...]:
    """What the product is, not how it is dosed: its RxNorm codes, else its name in lower case."""
    codes = sorted({c.code for c in (*order.codings, *order.ingredient_codings) if c.system == RXNORM and c.code})
    return tuple(codes) if codes else (" ".join(order.name.lower().split()),)


def _reason_code(item: Mapping[str, Any]) -> str | None:
    _reason, coding = override_reason_of(item)
    code = coding.get("code")
    return code if isinstance(code, str) else None
