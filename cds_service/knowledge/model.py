"""Typed, immutable view of the knowledge tables (the YAML files beside this module)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class SourceCheck:
    """A source's link read against a stored copy of the document it names: when, what, and the result."""

    on: str
    against: str
    result: str

    @property
    def unchecked(self) -> bool:
        return self.result.lower().startswith("unchecked")


@dataclass(frozen=True, slots=True)
class Source:
    id: str
    citation: str  # the document as a pharmacist knows it
    status: str
    url: str | None = None
    note: str | None = None
    claim: str | None = None  # what this service takes from it, one sentence (shown for local policy)
    checked: SourceCheck | None = None

    @property
    def local_policy(self) -> bool:
        return self.status == "POLICY"


@dataclass(frozen=True, slots=True)
class Parameter:
    """A number a rule compares against, with where it comes from."""

    name: str
    value: float
    unit: str
    sources: tuple[str, ...]
    evidence: str
    note: str | None = None


@dataclass(frozen=True, slots=True)
class RuleVariant:
    """The same rule said differently for a treatment context (its id, and so its feedback, stays)."""

    name: str
    when: str
    indicator: str
    text: Mapping[str, str]  # replaces the rule's texts of the same key
    suggestions: tuple[str, ...]
    sources: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RuleSpec:
    id: str
    title: str
    indicator: str
    evidence: str
    sources: tuple[str, ...]
    parameters: Mapping[str, Parameter]
    text: Mapping[str, str]
    suggestions: tuple[str, ...]
    override_reasons: tuple[str, ...]
    enabled: bool = True
    mode: str = "live"  # "silent": evaluated and recorded but never returned to the EHR (a site's shadow mode)
    escalated_indicator: str | None = None
    variants: Mapping[str, RuleVariant] = field(default_factory=dict)
    yields_to: tuple[str, ...] = ()  # rules whose card on the same order already says what this one would

    def value(self, name: str) -> float:
        return self.parameters[name].value


LOINC = "http://loinc.org"  # the code system of every lab code in labs.yaml


@dataclass(frozen=True, slots=True)
class Analyte:
    name: str
    label: str
    canonical_unit: str
    factors: Mapping[str, float]
    codes: tuple[str, ...]
    methods: Mapping[str, str] = field(default_factory=dict)


MASS_MG = {"mg": 1.0, "g": 1000.0, "mcg": 0.001}


@dataclass(frozen=True, slots=True)
class Ingredient:
    """One ingredient of a product: as written, what it is, and how much per unit (mg, or mg per mL)."""

    name: str
    magnesium: bool  # magnesium in its own right (a salt, or "magnesium" with no salt named)
    salt: str | None  # the magnesium salt, when named (magnesium.yaml)
    amount: float | None = None  # in `unit` per dose unit (tablet) or per `per_ml` mL
    unit: str | None = None  # mg, meq, mmol, unt
    per_ml: float | None = None  # the volume the amount is in, for liquids ("200 mg/5 mL": 5)
    elemental: bool = False  # the amount is labelled as elemental magnesium

    @property
    def mg(self) -> float | None:
        """The amount in mg, when it is a mass."""
        if self.amount is None or self.unit not in MASS_MG:
            return None
        return self.amount * MASS_MG[self.unit]


@dataclass(frozen=True, slots=True)
class RxNormProduct:
    """One RxCUI of the derived product table (rxnorm_products.json): what it contains, per unit."""

    rxcui: str
    name: str
    kind: str  # clinical drug, branded drug, component, dose-form group
    ingredients: tuple[Ingredient, ...]
    drugs: tuple[str, ...]  # partner drugs (drugs.yaml names) among its ingredients

    @property
    def magnesium(self) -> tuple[Ingredient, ...]:
        return tuple(i for i in self.ingredients if i.magnesium)


@dataclass(frozen=True, slots=True)
class Salt:
    name: str
    words: tuple[str, ...]
    rxnorm_in: str | None
    elemental_fraction: float | None
    kind: str = "supplement"  # "drug-salt": the magnesium salt of an active drug (magnesium salicylate)
    monitor_from_age: float | None = None  # long-term use from this age asks for a recheck (MgO: Wakai 2019)


@dataclass(frozen=True, slots=True)
class Excipient:
    """A drug whose tablets carry a magnesium salt as an excipient (quinapril: magnesium carbonate)."""

    drug: str
    words: tuple[str, ...]
    salt: str
    sources: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ConditionSet:
    name: str
    label: str
    codes: frozenset[tuple[str, str]]
    phrases: tuple[str, ...]
    icd10_prefixes: tuple[str, ...] = ()
    at_most: Mapping[tuple[str, str], float] = field(default_factory=dict)  # CKD stage: top of its GFR category
    coded_systems: frozenset[str] = frozenset()  # a Condition coded in one of these is judged by code alone
    not_when: tuple[str, ...] = ()  # words that make a free-text problem past or replaced ("history of")


@dataclass(frozen=True, slots=True)
class MagnesiumTables:
    salts: tuple[Salt, ...]
    product_ingredient: Mapping[str, str]
    atc_prefixes: tuple[str, ...]
    words: tuple[str, ...]
    brands: tuple[str, ...]
    abbreviation: str
    counter_ion_words: frozenset[str] = frozenset()  # "magnesium salicylate" is a salicylate
    rxnorm_products: Mapping[str, RxNormProduct] = field(default_factory=dict)  # derived from the Sandbox table
    elemental_mg_per: Mapping[str, float] = field(default_factory=dict)  # mmol, meq -> mg elemental magnesium
    salt_of_word: Mapping[str, str] = field(default_factory=dict)  # "oxide" -> "magnesium oxide" (built at load)
    fraction_of_salt: Mapping[str, float | None] = field(default_factory=dict)  # salt -> elemental fraction
    drug_words: frozenset[str] = frozenset()  # drugs.yaml names: "esomeprazole magnesium" is esomeprazole
    salt_kind: Mapping[str, str] = field(default_factory=dict)  # salt -> supplement | drug-salt
    monitor_from_age: Mapping[str, float] = field(default_factory=dict)  # salt -> age a long-term start is rechecked
    excipients: tuple[Excipient, ...] = ()
    laxative_atc: tuple[str, ...] = ()  # a product with one of these ATC prefixes is a laxative
    laxative_words: tuple[str, ...] = ()  # ... or with one of these words in its name or reason
    # Product names read into ingredients (clinical/products.read_ingredients), by name: the same
    # formulary names come in every call. Bounded there; not part of the tables' value.
    ingredients_read: dict[str, tuple[Ingredient, ...]] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Drug:
    """An interacting or magnesium-wasting drug. Spacing is for this drug relative to magnesium."""

    name: str
    class_id: str
    rxnorm_in: tuple[str, ...]
    atc: tuple[str, ...]
    words: tuple[str, ...]
    sources: tuple[str, ...]
    evidence: str
    before_h: float | None = None
    after_h: float | None = None
    indicator: str | None = None
    min_daily_mg: float | None = None
    note: str | None = None
    only_with: tuple[str, ...] = ()  # words the magnesium product must carry (rosuvastatin: Al/Mg antacids only)
    long_term_days: float | None = None  # a bounded course shorter than this is not long-term use (PPIs: months)


@dataclass(frozen=True, slots=True)
class DrugClass:
    id: str
    rule: str
    kind: str  # "chelation" | "depletion" | "risk"
    label: str
    drugs: tuple[Drug, ...]


@dataclass(frozen=True, slots=True)
class OrderReadingTable:
    """How orders are read (order_reading.yaml): route codes and words per class, use and setting."""

    route_codes: Mapping[tuple[str, str], str]
    route_words: tuple[tuple[str, frozenset[str]], ...]  # in the order the classes are checked
    short_course_max_days: float
    one_time_words: tuple[str, ...]
    setting_system: str
    setting_codes: Mapping[str, str]
    encounter_class_system: str = ""
    encounter_classes: Mapping[str, str] = field(default_factory=dict)  # v3 ActCode -> inpatient/outpatient


@dataclass(frozen=True, slots=True)
class GateSide:
    routes: frozenset[str]
    uses: frozenset[str]

    def admits(self, route: str, use: str) -> bool:
        return route in self.routes and use in self.uses


@dataclass(frozen=True, slots=True)
class Gate:
    """One row of gating.yaml: which readings of each side a rule judges, and why."""

    rule_id: str
    magnesium: GateSide | None
    partner: GateSide | None
    reason: str
    sources: tuple[str, ...]
    drugs: Mapping[str, GateSide] = field(default_factory=dict)  # a partner drug judged otherwise (cisplatin)
    drafted_together: GateSide | None = None  # magnesium drafted twice in one signing, judged whatever its use
    not_for: tuple[str, ...] = ()  # treatment contexts the rule does not judge (dose-above-ul: laxative, ...)


@dataclass(frozen=True, slots=True)
class StandardReasons:
    """This service's override reasons as standard codes (CDS Hooks 3.0 ballot, override_reasons.yaml)."""

    system: str
    by_local: Mapping[str, tuple[str, str]]  # local code -> (standard code, its display)
    displays: Mapping[str, str]  # standard code -> display

    def of(self, system: str | None, code: str | None, local_system: str) -> str | None:
        """The standard code a feedback's reason stands for: itself when it is one, else its mapping."""
        if code is None:
            return None
        if system == self.system and code in self.displays:
            return code
        if system == local_system and code in self.by_local:
            return self.by_local[code][0]
        return None


@dataclass(frozen=True, slots=True)
class Knowledge:
    """Everything the record and rule layers need to know, already validated."""

    sources: Mapping[str, Source]
    unit_aliases: Mapping[str, str]
    analytes: Mapping[str, Analyte]
    loinc_to_analyte: Mapping[str, str]
    magnesium: MagnesiumTables
    conditions: Mapping[str, ConditionSet]
    renal_function: Mapping[str, Parameter]
    renal_estimate: str  # cautious | cockcroft-gault | ckd-epi: which estimate sets the renal tier
    level_checks: Mapping[str, Parameter]
    lab_lookbacks: Mapping[str, Parameter]
    override_reason_system: str
    override_reasons: Mapping[str, str]
    rules: Mapping[str, RuleSpec]
    drug_classes: Mapping[str, DrugClass] = field(default_factory=dict)
    order_reading: OrderReadingTable | None = None
    gates: Mapping[str, Gate] = field(default_factory=dict)
    trace_below_mg_per_day: float = 0.0  # a combination product giving less magnesium than this a day ...
    trace_rules: frozenset[str] = frozenset()  # ... is judged by these rules only (gating.yaml trace_magnesium)
    # Magnesium that is no supplement (gating.yaml not_a_supplement): kind -> the rules that judge it, and why.
    not_a_supplement: Mapping[str, tuple[frozenset[str], str]] = field(default_factory=dict)
    lab_retention_days: float = 0.0  # the longest lookback any rule uses + the 7-day AKI window (derived at load)
    snooze_days: Mapping[str, float] = field(default_factory=dict)  # override-reason code -> days it snoozes
    standard_reasons: StandardReasons | None = None  # the override reasons as CDS Hooks 3.0 standard codes

    def rule(self, rule_id: str) -> RuleSpec:
        return self.rules[rule_id]

    def enabled(self, rule_id: str) -> bool:
        spec = self.rules.get(rule_id)
        return spec is not None and spec.enabled
