"""How an order is read, once, before any rule judges it: route class, use and setting.

A single IV dose, a PRN laxative, a bowel prep and an Epsom salt bath are all "magnesium", but no
pharmacist would give them the same advice as a daily oral supplement. Every rule and the gating table
(knowledge/gating.yaml) read this one reading; every card states it. The words and codes come from the
knowledge (order_reading.yaml); the timing from the order's typed dosage (record/dosage.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, cast

from ..knowledge.model import OrderReadingTable
from ..knowledge.words import words_of
from .model import Coding, MedicationEntry

RouteClass = Literal["enteral", "rectal", "parenteral", "not-absorbed"]
Use = Literal["one-time", "short-course", "as-needed", "long-term"]
Setting = Literal["inpatient", "outpatient", "unknown"]
ROUTE_LABEL = {"enteral": "enteral", "rectal": "rectal", "parenteral": "parenteral", "not-absorbed": "not absorbed"}
USE_LABEL = {
    "one-time": "one-time",
    "short-course": "short course",
    "as-needed": "as needed",
    "long-term": "scheduled long-term",
}
ASSUMED_ORAL = "no route or dose form stated: assumed oral"


@dataclass(frozen=True, slots=True)
class OrderReading:
    route: RouteClass
    route_how: str
    use: Use
    use_how: str
    setting: Setting
    setting_how: str = ""
    name: str = ""  # the name the order was read by: its own, else the RxNorm name of its code
    days: float | None = None  # the length of a bounded course (boundsDuration, boundsPeriod, count)

    @property
    def occasional(self) -> bool:
        """A one-time or as-needed dose (a laxative, a bowel prep, a single IV dose): no ongoing therapy."""
        return self.use in ("one-time", "as-needed")

    @property
    def route_assumed(self) -> bool:
        """No route, dose form or route word anywhere: read as oral, and a card that relies on it says so."""
        return self.route_how == ASSUMED_ORAL

    def shown(self) -> str:
        """'enteral (route Oral route), scheduled long-term (no end stated), outpatient (order category)'."""
        setting = "" if self.setting == "unknown" else f", {self.setting} ({self.setting_how})"
        return f"{ROUTE_LABEL[self.route]} ({self.route_how}), {USE_LABEL[self.use]} ({self.use_how}){setting}"


def read_order(
    entry: MedicationEntry, table: OrderReadingTable, encounter: Setting = "unknown", known_name: str = ""
) -> OrderReading:
    """`encounter` is the setting read from the hook's encounter class: used when the order has no
    category. `known_name` names an order sent by code alone ("Magnesium Oxide 500 MG Oral Tablet")."""
    setting, setting_how = _setting(entry.category_codings, table), "order category"
    if setting == "unknown":
        setting, setting_how = encounter, "encounter class"
    name = entry.name or known_name
    route, route_how = _route(entry, table, name)
    use, use_how = _use(entry, table, setting, route, name)
    days = entry.dosage.course_days if entry.dosage is not None else None
    return OrderReading(route, route_how, use, use_how, setting, setting_how, name, days)


def _route(entry: MedicationEntry, table: OrderReadingTable, name: str) -> tuple[RouteClass, str]:
    for coding in entry.route_codings:
        found = table.route_codes.get((coding.system or "", coding.code or ""))
        if found:
            return cast(RouteClass, found), f"route {coding.display or coding.code}"
    route_text = " ".join([entry.route_text, *(c.display or "" for c in entry.route_codings)])
    for label, text in (("route", route_text), ("dose form", entry.form_text), ("name", name)):
        route_class = _class_of(text, table)
        if route_class:
            return route_class, f"{label} '{found_word(text, table, route_class)}'"
    for text in entry.ingredient_names:
        route_class = _class_of(text, table)
        if route_class:
            return route_class, "ingredient name"
    return "enteral", ASSUMED_ORAL


def _class_of(text: str, table: OrderReadingTable) -> RouteClass | None:
    return _route_class_of(text, table.route_words) if text else None


@lru_cache(maxsize=8192)
def _route_class_of(text: str, route_words: tuple[tuple[str, frozenset[str]], ...]) -> RouteClass | None:
    """Route texts, forms and drug names repeat across calls (one formulary): each is read once."""
    words = set(words_of(text))
    lowered = f" {text.lower()} "
    for route_class, class_words in route_words:
        if words & class_words or any(" " in w and f" {w} " in lowered for w in class_words):
            return cast(RouteClass, route_class)
    return None


def found_word(text: str, table: OrderReadingTable, route_class: RouteClass) -> str:
    words = dict(table.route_words)[route_class]
    return next((w for w in words_of(text) if w in words), route_class)


def _use(
    entry: MedicationEntry, table: OrderReadingTable, setting: Setting, route: RouteClass, name: str
) -> tuple[Use, str]:
    dosage = entry.dosage
    if dosage is not None and dosage.as_needed:
        return "as-needed", "asNeeded"
    if dosage is not None and dosage.count == 1:
        return "one-time", "timing count 1"
    texts = [dosage.text, dosage.timing_code_text] if dosage is not None else []
    for text in (*texts, name):
        word = _phrase_in(text, table.one_time_words)
        if word:
            return "one-time", f"'{word}'"
    days = dosage.course_days if dosage is not None else None
    if days is not None:
        if days <= table.short_course_max_days:
            return "short-course", f"{days:g} days"
        return "long-term", f"{days:g} days"
    if setting == "inpatient" and route == "parenteral":
        return "short-course", "inpatient parenteral order (repletion protocol)"
    return "long-term", "no end stated"


def encounter_setting(encounter_class: Coding | None, table: OrderReadingTable) -> Setting:
    """Inpatient or outpatient from Encounter.class (v3 ActCode), unknown when not given or not listed."""
    if encounter_class is None or encounter_class.system not in (table.encounter_class_system, None):
        return "unknown"
    return cast(Setting, table.encounter_classes.get(encounter_class.code or "", "unknown"))


def _setting(category: tuple[Coding, ...], table: OrderReadingTable) -> Setting:
    """MedicationRequest.category, in the code system the table names."""
    for coding in category:
        if coding.system == table.setting_system:
            found = table.setting_codes.get(coding.code or "")
            if found:
                return cast(Setting, found)
    return "unknown"


def _phrase_in(text: str, phrases: tuple[str, ...]) -> str | None:
    return _phrase_of(text, phrases) if text else None


@lru_cache(maxsize=8192)
def _phrase_of(text: str, phrases: tuple[str, ...]) -> str | None:
    """Dosage texts and names repeat across calls: each is searched once per process."""
    words = set(words_of(text))
    lowered = f" {' '.join(words_of(text))} "
    for phrase in phrases:
        if (" " in phrase and f" {phrase} " in lowered) or phrase in words:
            return phrase
    return None
