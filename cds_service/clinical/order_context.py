"""How an order is read, once, before any rule judges it: route class, use and setting.

A single IV dose, a PRN laxative, a bowel prep and an Epsom salt bath are all "magnesium", but no
pharmacist would give them the same advice as a daily oral supplement. The gating table
(knowledge/gating.yaml) decides which rules judge which reading; every card states the reading.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any, Literal

from ..jsonutil import items
from ..knowledge.model import OrderVocabulary
from ..record.dates import parse_datetime
from ..record.model import Coding, MedicationEntry
from .dose import PERIOD_PER_DAY
from .dose import is_num as _num
from .matching import words_of

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
DAYS = {"s": 1 / 86400, "min": 1 / 1440, "h": 1 / 24, "d": 1.0, "wk": 7.0, "mo": 30.0, "a": 365.0}


@dataclass(frozen=True, slots=True)
class OrderContext:
    route: RouteClass
    route_how: str
    use: Use
    use_how: str
    setting: Setting
    setting_how: str = ""
    name: str = ""  # the name the order was read by: its own, else the RxNorm name of its code
    days: float | None = None  # the length of a bounded course (boundsDuration, boundsPeriod, count)

    def shown(self) -> str:
        """'enteral (route Oral route), scheduled long-term (no end stated), outpatient (order category)'."""
        setting = "" if self.setting == "unknown" else f", {self.setting} ({self.setting_how})"
        return f"{ROUTE_LABEL[self.route]} ({self.route_how}), {USE_LABEL[self.use]} ({self.use_how}){setting}"


def read_order(
    entry: MedicationEntry, vocabulary: OrderVocabulary, encounter: Setting = "unknown", known_name: str = ""
) -> OrderContext:
    """`encounter` is the setting read from the hook's encounter class: used when the order has no
    category. `known_name` names an order sent by code alone ("Magnesium Oxide 500 MG Oral Tablet")."""
    setting, setting_how = _setting(entry.resource, vocabulary), "order category"
    if setting == "unknown":
        setting, setting_how = encounter, "encounter class"
    name = entry.name or known_name
    route, route_how = _route(entry, vocabulary, name)
    use, use_how = _use(entry, vocabulary, setting, route, name)
    days = _course_days(_repeat(entry.dosage or {}))
    return OrderContext(route, route_how, use, use_how, setting, setting_how, name, days)


def _route(entry: MedicationEntry, vocabulary: OrderVocabulary, name: str) -> tuple[RouteClass, str]:
    for coding in entry.route_codings:
        found = vocabulary.route_codes.get((coding.system or "", coding.code or ""))
        if found:
            return found, f"route {coding.display or coding.code}"
    route_text = " ".join([entry.route_text, *(c.display or "" for c in entry.route_codings)])
    form = _form_text(entry.resource)
    for label, text in (("route", route_text), ("dose form", form), ("name", name)):
        found = _class_of(text, vocabulary)
        if found:
            return found, f"{label} '{found_word(text, vocabulary, found)}'"
    for text in entry.ingredient_names:
        found = _class_of(text, vocabulary)
        if found:
            return found, "ingredient name"
    return "enteral", "no route or dose form stated: assumed oral"


def _class_of(text: str, vocabulary: OrderVocabulary) -> RouteClass | None:
    return _route_class_of(text, vocabulary.route_words) if text else None


@lru_cache(maxsize=8192)
def _route_class_of(text: str, route_words: tuple[tuple[str, frozenset[str]], ...]) -> RouteClass | None:
    """Route texts, forms and drug names repeat across calls (one formulary): each is read once."""
    words = set(words_of(text))
    lowered = f" {text.lower()} "
    for route_class, class_words in route_words:
        if words & class_words or any(" " in w and f" {w} " in lowered for w in class_words):
            return route_class
    return None


def found_word(text: str, vocabulary: OrderVocabulary, route_class: RouteClass) -> str:
    words = dict(vocabulary.route_words)[route_class]
    return next((w for w in words_of(text) if w in words), route_class)


def _form_text(resource: Mapping[str, Any]) -> str:
    """Medication.form of a contained Medication (the referenced ones are named in entry.name)."""
    for contained in items(resource.get("contained")):
        if isinstance(contained, dict) and isinstance(contained.get("form"), dict):
            form = contained["form"]
            text = form.get("text")
            if isinstance(text, str):
                return text
            return " ".join(str(c.get("display", "")) for c in items(form.get("coding")) if isinstance(c, dict))
    return ""


def _use(
    entry: MedicationEntry, vocabulary: OrderVocabulary, setting: Setting, route: RouteClass, name: str
) -> tuple[Use, str]:
    dosage = entry.dosage or {}
    if dosage.get("asNeededBoolean") is True or isinstance(dosage.get("asNeededCodeableConcept"), dict):
        return "as-needed", "asNeeded"
    repeat = _repeat(dosage)
    count = repeat.get("count")
    if _num(count) and count == 1:
        return "one-time", "timing count 1"
    texts = [str(dosage.get("text") or ""), _timing_code_text(dosage), name]
    for text in texts:
        word = _phrase_in(text, vocabulary.one_time_words)
        if word:
            return "one-time", f"'{word}'"
    days = _course_days(repeat)
    if days is not None:
        if days <= vocabulary.short_course_max_days:
            return "short-course", f"{days:g} days"
        return "long-term", f"{days:g} days"
    if setting == "inpatient" and route == "parenteral":
        return "short-course", "inpatient parenteral order (repletion protocol)"
    return "long-term", "no end stated"


def _course_days(repeat: Mapping[str, Any]) -> float | None:
    """Length of a bounded course in days: boundsDuration, boundsPeriod, or count / doses per day."""
    duration = repeat.get("boundsDuration")
    if isinstance(duration, dict) and _num(duration.get("value")):
        unit = duration.get("code") or duration.get("unit")
        if unit in DAYS:
            return float(duration["value"]) * DAYS[unit]
    period = repeat.get("boundsPeriod")
    if isinstance(period, dict):
        start, end = parse_datetime(period.get("start")), parse_datetime(period.get("end"))
        if start and end and end >= start:
            return (end - start) / timedelta(days=1)
    count = repeat.get("count")
    if _num(count) and count > 0:
        frequency = repeat.get("frequency") if _num(repeat.get("frequency")) else 1
        period_value = repeat.get("period") if _num(repeat.get("period")) and repeat["period"] > 0 else 1
        unit = repeat.get("periodUnit", "d")
        if unit in PERIOD_PER_DAY and frequency:
            per_day = frequency * PERIOD_PER_DAY[unit] / period_value
            return float(count) / per_day
    return None


def encounter_setting(encounter_class: Coding | None, vocabulary: OrderVocabulary) -> Setting:
    """Inpatient or outpatient from Encounter.class (v3 ActCode), unknown when not given or not listed."""
    if encounter_class is None or encounter_class.system not in (vocabulary.encounter_class_system, None):
        return "unknown"
    return vocabulary.encounter_classes.get(encounter_class.code or "", "unknown")  # type: ignore[return-value]


def _setting(resource: Mapping[str, Any], vocabulary: OrderVocabulary) -> Setting:
    category = resource.get("category")
    concepts = [category] if isinstance(category, dict) else items(category)  # some EHRs send one object
    for concept in concepts:
        if not isinstance(concept, dict):
            continue
        for coding in items(concept.get("coding")):
            if isinstance(coding, dict) and coding.get("system") == vocabulary.setting_system:
                found = vocabulary.setting_codes.get(str(coding.get("code")))
                if found:
                    return found  # type: ignore[return-value]
    return "unknown"


def _repeat(dosage: Mapping[str, Any]) -> Mapping[str, Any]:
    timing = dosage.get("timing") if isinstance(dosage.get("timing"), dict) else {}
    repeat = timing.get("repeat")
    return repeat if isinstance(repeat, dict) else {}


def _timing_code_text(dosage: Mapping[str, Any]) -> str:
    timing = dosage.get("timing") if isinstance(dosage.get("timing"), dict) else {}
    code = timing.get("code") if isinstance(timing.get("code"), dict) else {}
    parts = [str(code.get("text") or "")]
    parts += [str(c.get("code", "")) for c in items(code.get("coding")) if isinstance(c, dict)]
    return " ".join(parts)


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
