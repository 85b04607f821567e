"""Load and validate the knowledge tables; apply a site's overrides.

Validation happens once at start-up so that a broken table or config stops the service with a
message naming the file and key, instead of producing wrong cards later.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from importlib import resources
from typing import Any

import yaml

from ..memo import Memo
from .anatomy import TemplateError, check_texts
from .model import (
    Analyte,
    ConditionSet,
    Drug,
    DrugClass,
    Excipient,
    Gate,
    GateSide,
    Ingredient,
    Knowledge,
    MagnesiumTables,
    OrderReadingTable,
    Parameter,
    RuleSpec,
    RuleVariant,
    RxNormProduct,
    Salt,
    Source,
    SourceCheck,
    StandardReasons,
)
from .suggestions import SUGGESTIONS

TABLE_FILES = (
    "sources.yaml",
    "labs.yaml",
    "magnesium.yaml",
    "drugs.yaml",
    "conditions.yaml",
    "rules.yaml",
    "order_reading.yaml",
    "gating.yaml",
    "override_reasons.yaml",
)
RXNORM_TABLE = "rxnorm_products.json"  # derived by cds_service/rxnorm_derive.py; absent while it is being derived
ROUTE_CLASSES = ("parenteral", "not-absorbed", "rectal", "enteral")
USES = ("one-time", "short-course", "as-needed", "long-term")
EVIDENCE_GRADES = frozenset({"high", "moderate", "low", "expert-opinion"})
SOURCE_STATUSES = frozenset({"VERIFIED", "SECONDARY", "POLICY", "UNVERIFIED"})
INDICATORS = frozenset({"info", "warning", "critical"})


# libyaml's parser when PyYAML was built with it: ten times faster (every app and every `evaluate` reads
# the tables, twice: the config checks a site's overrides at start, the service builds its knowledge)
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class KnowledgeError(ValueError):
    """A knowledge table or a site override is invalid; the message names the key."""


def read_tables() -> dict[str, Any]:
    """The raw tables shipped with the package, keyed by file name (the derived RxNorm table is JSON)."""
    folder = resources.files("cds_service.knowledge")
    tables = {name: _yaml(folder.joinpath(name).read_text(encoding="utf-8")) for name in TABLE_FILES}
    derived = folder.joinpath(RXNORM_TABLE)
    tables[RXNORM_TABLE] = json.loads(derived.read_text(encoding="utf-8")) if derived.is_file() else None
    return tables


def _yaml(text: str) -> Any:
    return yaml.load(text, Loader=_YAML_LOADER)  # a safe loader (C or Python)


# Knowledge is immutable, and the same tables with the same overrides build the same one: built once
# per process (the config checks it at start, then the service uses it; the tests build hundreds of apps).
_BUILT: Memo[str, Knowledge] = Memo(64)


def load_knowledge(overrides: Mapping[str, Any] | None = None) -> Knowledge:
    """Validated knowledge with a site's `rules`, `renal_function`, `lab_lookbacks` and `gating` overrides."""
    key = json.dumps(overrides or {}, sort_keys=True, default=repr)
    return _BUILT.get(key, lambda: _load(overrides))


def _load(overrides: Mapping[str, Any] | None) -> Knowledge:
    tables = read_tables()
    if overrides:
        tables["rules.yaml"] = apply_overrides(tables["rules.yaml"], overrides)
        tables["gating.yaml"] = _gating_overrides(tables["gating.yaml"], overrides.get("gating") or {})
    return build_knowledge(tables)


def _gating_overrides(table: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """A site narrows or widens a rule's row: gating: {<rule>: {magnesium: {routes: [...], uses: [...]}}}."""
    merged = copy.deepcopy(table)
    if not isinstance(changes, Mapping):
        raise KnowledgeError("config: gating must be a mapping of rule ids")
    for rule_id, change in changes.items():
        where = f"config: gating.{rule_id}"
        if not isinstance(change, Mapping) or set(change) - {"magnesium", "partner"}:
            raise KnowledgeError(f"{where}: give magnesium and/or partner, each with routes and uses")
        row = merged["rules"].setdefault(rule_id, {"reason": "site configuration", "source": []})
        for side, value in change.items():
            row[side] = {**(row.get(side) or {}), **value} if isinstance(value, Mapping) else value
        row["reason"] = f"{row.get('reason', '')} (changed by the site's configuration)".strip()
    return merged


MODES = ("live", "silent")  # silent: evaluated and recorded, never returned (shadow mode)


def apply_overrides(rules_table: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of rules.yaml with site overrides merged in; unknown keys are errors."""
    merged = copy.deepcopy(rules_table)
    for section in ("renal_function", "lab_lookbacks", "level_checks"):
        for name, value in (overrides.get(section) or {}).items():
            where = f"config: {section}.{name}"
            if section == "renal_function" and name == "estimate":
                choices = merged["renal_estimate"]["choices"]
                if value not in choices:
                    raise KnowledgeError(f"{where}: must be one of {', '.join(choices)}")
                merged["renal_estimate"]["value"] = value
                continue
            if name not in merged[section]:
                raise KnowledgeError(f"{where}: unknown parameter (known: {', '.join(sorted(merged[section]))})")
            merged[section][name]["value"] = _number(value, where)
    for rule_id, change in (overrides.get("rules") or {}).items():
        where = f"config: rules.{rule_id}"
        if rule_id not in merged["rules"]:
            raise KnowledgeError(f"{where}: unknown rule id")
        if not isinstance(change, Mapping):
            raise KnowledgeError(f"{where}: must be a mapping with 'enabled', 'mode' and/or 'parameters'")
        unknown = set(change) - {"enabled", "mode", "parameters"}
        if unknown:
            raise KnowledgeError(f"{where}.{sorted(unknown)[0]}: unknown key (use 'enabled', 'mode' or 'parameters')")
        if "enabled" in change:
            if not isinstance(change["enabled"], bool):
                raise KnowledgeError(f"{where}.enabled: must be true or false")
            merged["rules"][rule_id]["enabled"] = change["enabled"]
        if "mode" in change:
            if change["mode"] not in MODES:
                raise KnowledgeError(f"{where}.mode: must be one of {', '.join(MODES)}")
            merged["rules"][rule_id]["mode"] = change["mode"]
        params = merged["rules"][rule_id].get("parameters") or {}
        for name, value in (change.get("parameters") or {}).items():
            if name not in params:
                raise KnowledgeError(f"{where}.parameters.{name}: unknown parameter")
            params[name]["value"] = _number(value, f"{where}.parameters.{name}")
    return merged


def build_knowledge(tables: Mapping[str, Any]) -> Knowledge:
    sources = _sources(tables["sources.yaml"])
    labs = tables["labs.yaml"]
    aliases = {str(k).lower().replace(" ", ""): str(v) for k, v in labs["units"]["aliases"].items()}
    analytes = {name: _analyte(name, row, sources) for name, row in labs["analytes"].items()}
    loinc_to_analyte: dict[str, str] = {}
    for analyte in analytes.values():
        for code in analyte.codes:
            if code in loinc_to_analyte:
                raise KnowledgeError(f"labs.yaml: LOINC {code} listed under two analytes")
            loinc_to_analyte[code] = analyte.name
    rules_table = tables["rules.yaml"]
    override_reasons = {str(k): str(v) for k, v in rules_table["override_reasons"]["codes"].items()}
    rules = {rid: _rule(rid, row, sources, override_reasons) for rid, row in rules_table["rules"].items()}
    snooze_days = _snooze_reasons(rules_table.get("snooze_reasons") or {}, sources, override_reasons)
    renal_function = _parameters("rules.yaml: renal_function", rules_table["renal_function"], sources)
    renal_estimate = _renal_estimate(rules_table.get("renal_estimate") or {}, sources)
    level_checks = _parameters("rules.yaml: level_checks", rules_table["level_checks"], sources)
    lab_lookbacks = _parameters("rules.yaml: lab_lookbacks", rules_table["lab_lookbacks"], sources)
    knowledge = Knowledge(
        sources=sources,
        unit_aliases=aliases,
        analytes=analytes,
        loinc_to_analyte=loinc_to_analyte,
        magnesium=_magnesium(tables["magnesium.yaml"], sources, _derived(tables, sources), _drug_words(tables)),
        conditions=_conditions(tables["conditions.yaml"], sources),
        renal_function=renal_function,
        renal_estimate=renal_estimate,
        level_checks=level_checks,
        lab_lookbacks=lab_lookbacks,
        override_reason_system=str(rules_table["override_reasons"]["system"]),
        override_reasons=override_reasons,  # the snooze reasons' displays added by _snooze_reasons
        rules=rules,
        snooze_days=snooze_days,
        drug_classes=_drug_classes(tables["drugs.yaml"], sources, rules),
        order_reading=_order_reading(tables["order_reading.yaml"], sources),
        gates=_gates(tables["gating.yaml"], sources, rules),
        **_trace(tables["gating.yaml"].get("trace_magnesium") or {}, sources, rules),
        not_a_supplement=_not_a_supplement(tables["gating.yaml"].get("not_a_supplement") or {}, sources, rules),
        lab_retention_days=_retention_days([*renal_function.values(), *lab_lookbacks.values()], rules),
        standard_reasons=_standard_reasons(tables["override_reasons.yaml"], sources, override_reasons),
    )
    _check_renal_tiers(knowledge)
    for rule in rules.values():
        unknown = [r for r in rule.yields_to if r not in rules]
        if unknown:
            raise KnowledgeError(f"rules.yaml: rules.{rule.id}.yields_to: unknown rule id '{unknown[0]}'")
    return knowledge


def _standard_reasons(
    table: Mapping[str, Any], sources: Mapping[str, Source], local: Mapping[str, str]
) -> StandardReasons:
    """Every local override reason mapped to a standard code of the table, or listed as unmapped."""
    where = "override_reasons.yaml"
    _cited(where, table.get("source"), sources)
    displays = {str(k): str(v) for k, v in (table.get("codes") or {}).items()}
    mapping = {str(k): str(v) for k, v in (table.get("map") or {}).items()}
    unmapped = {str(code) for code in table.get("unmapped") or ()}
    for code, standard in mapping.items():
        if code not in local:
            raise KnowledgeError(f"{where}: map.{code}: not an override reason of rules.yaml")
        if standard not in displays:
            raise KnowledgeError(f"{where}: map.{code}: standard code '{standard}' is not under codes")
    missing = sorted(set(local) - set(mapping) - unmapped)
    if missing:
        raise KnowledgeError(f"{where}: override reason '{missing[0]}' is neither in map nor in unmapped")
    return StandardReasons(
        system=str(table["system"]),
        by_local={code: (standard, displays[standard]) for code, standard in mapping.items()},
        displays=displays,
    )


def _snooze_reasons(
    table: Mapping[str, Any], sources: Mapping[str, Source], reasons: dict[str, str]
) -> dict[str, float]:
    """Snooze override reasons: code -> days; their displays join the override-reason table."""
    days: dict[str, float] = {}
    for code, row in table.items():
        where = f"rules.yaml: snooze_reasons.{code}"
        if code in reasons or not isinstance(row, Mapping) or not isinstance(row.get("display"), str):
            raise KnowledgeError(f"{where}: needs a display and a code of its own")
        _cited(where, row.get("source"), sources)
        days[str(code)] = _number(row.get("days"), f"{where}.days")
        reasons[str(code)] = row["display"]
    return days


def _sources(table: Mapping[str, Any]) -> dict[str, Source]:
    out = {}
    for sid, row in table["sources"].items():
        where = f"sources.yaml: {sid}"
        if not row.get("citation"):
            raise KnowledgeError(f"{where}.citation: missing")
        if row.get("status") not in SOURCE_STATUSES:
            raise KnowledgeError(f"{where}.status: must be one of {sorted(SOURCE_STATUSES)}")
        url = row.get("url")
        if url is not None and not str(url).startswith("https://"):
            raise KnowledgeError(f"{where}.url: must be an absolute https URL")
        out[sid] = Source(
            id=sid,
            citation=row["citation"],
            status=row["status"],
            url=url,
            note=row.get("note"),
            claim=row.get("claim"),
            checked=_checked(f"{where}.checked", row.get("checked")),
        )
    return out


def _checked(where: str, row: Any) -> SourceCheck | None:
    """How a source's link was checked against a stored copy of the document it names, and when."""
    if row is None:
        return None
    if not isinstance(row, Mapping) or not row.get("on") or not row.get("result"):
        raise KnowledgeError(f"{where}: needs 'on' (a date) and 'result' (and 'against': what was read)")
    return SourceCheck(on=str(row["on"]), against=str(row.get("against") or ""), result=str(row["result"]))


def _cited(where: str, ids: Any, sources: Mapping[str, Source]) -> tuple[str, ...]:
    if isinstance(ids, str):
        ids = [ids]
    if not ids:
        raise KnowledgeError(f"{where}: source missing")
    for sid in ids:
        if sid not in sources:
            raise KnowledgeError(f"{where}: unknown source id '{sid}'")
    return tuple(ids)


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise KnowledgeError(f"{where}: must be a number, got {value!r}")
    if value < 0:
        raise KnowledgeError(f"{where}: must not be negative")
    return float(value)


def _parameters(where: str, table: Mapping[str, Any] | None, sources: Mapping[str, Source]) -> dict[str, Parameter]:
    out = {}
    for name, row in (table or {}).items():
        here = f"{where}.{name}"
        if not isinstance(row, Mapping):
            raise KnowledgeError(f"{here}: must be a mapping with value, unit, source, evidence")
        if row.get("evidence") not in EVIDENCE_GRADES:
            raise KnowledgeError(f"{here}.evidence: must be one of {sorted(EVIDENCE_GRADES)}")
        out[name] = Parameter(
            name=name,
            value=_number(row.get("value"), f"{here}.value"),
            unit=str(row.get("unit", "")),
            sources=_cited(f"{here}.source", row.get("source"), sources),
            evidence=row["evidence"],
            note=row.get("note"),
        )
    return out


def _analyte(name: str, row: Mapping[str, Any], sources: Mapping[str, Source]) -> Analyte:
    where = f"labs.yaml: analytes.{name}"
    _cited(f"{where}.factor_source", row.get("factor_source"), sources)
    codes, methods = [], {}
    for i, code_row in enumerate(row["codes"]):
        _cited(f"{where}.codes[{i}].source", code_row.get("source"), sources)
        codes.append(str(code_row["code"]))
        if code_row.get("method"):
            methods[str(code_row["code"])] = str(code_row["method"])
    factors = {str(unit): _number(f, f"{where}.factors.{unit}") for unit, f in row["factors"].items()}
    if factors.get(row["canonical_unit"]) != 1.0:
        raise KnowledgeError(f"{where}.factors: the canonical unit must have factor 1")
    return Analyte(name, row["label"], row["canonical_unit"], factors, tuple(codes), methods)


def _magnesium(
    table: Mapping[str, Any],
    sources: Mapping[str, Source],
    derived: Mapping[str, Any] | None,
    drug_words: frozenset[str] = frozenset(),
) -> MagnesiumTables:
    salts = []
    for i, row in enumerate(table["salts"]):
        _cited(f"magnesium.yaml: salts[{i}] ({row.get('name')}).source", row.get("source"), sources)
        fraction = row.get("elemental_fraction")
        if fraction is not None and not 0 < fraction < 1:
            raise KnowledgeError(f"magnesium.yaml: salts[{i}].elemental_fraction: must be between 0 and 1")
        kind = str(row.get("kind", "supplement"))
        if kind not in ("supplement", "drug-salt"):
            raise KnowledgeError(f"magnesium.yaml: salts[{i}].kind: must be supplement or drug-salt")
        age = row.get("monitor_from_age")
        if age is not None:
            age = _parameters(f"magnesium.yaml: salts[{i}]", {"monitor_from_age": age}, sources)["monitor_from_age"]
        words = tuple(w.lower() for w in row["words"])
        salts.append(Salt(row["name"], words, row.get("rxnorm_in"), fraction, kind, age.value if age else None))
    names = {s.name for s in salts}
    products = {}
    for i, row in enumerate(table["products"]):
        _cited(f"magnesium.yaml: products[{i}].source", row.get("source"), sources)
        if row["ingredient"] not in names:
            raise KnowledgeError(f"magnesium.yaml: products[{i}].ingredient: unknown salt '{row['ingredient']}'")
        products[str(row["rxcui"])] = row["ingredient"]
    prefixes = []
    for i, row in enumerate(table["atc_prefixes"]):
        _cited(f"magnesium.yaml: atc_prefixes[{i}].source", row.get("source"), sources)
        prefixes.append(str(row["prefix"]).upper())
    text = table["text"]
    excipients = []
    for i, row in enumerate(table.get("excipients") or ()):
        cited = _cited(f"magnesium.yaml: excipients[{i}].source", row.get("source"), sources)
        if row["salt"] not in names:
            raise KnowledgeError(f"magnesium.yaml: excipients[{i}].salt: unknown salt '{row['salt']}'")
        excipients.append(Excipient(row["drug"], tuple(w.lower() for w in row["words"]), row["salt"], cited))
    laxative = table.get("laxative") or {}
    if laxative:
        _cited("magnesium.yaml: laxative.source", laxative.get("source"), sources)
    return MagnesiumTables(
        salts=tuple(salts),
        product_ingredient=products,
        atc_prefixes=tuple(prefixes),
        words=tuple(w.lower() for w in text["words"]),
        brands=tuple(b["name"].lower() for b in text["brands"]),
        abbreviation=str(text["abbreviation"]).lower(),
        counter_ion_words=frozenset(str(w).lower() for w in text.get("counter_ion_words") or ()),
        drug_words=drug_words,
        salt_of_word={w: s.name for s in salts for w in s.words},
        fraction_of_salt={s.name: s.elemental_fraction for s in salts},
        salt_kind={s.name: s.kind for s in salts},
        monitor_from_age={s.name: s.monitor_from_age for s in salts if s.monitor_from_age is not None},
        excipients=tuple(excipients),
        laxative_atc=tuple(str(p).upper() for p in laxative.get("atc_prefixes") or ()),
        laxative_words=tuple(str(w).lower() for w in laxative.get("words") or ()),
        elemental_mg_per={
            unit: p.value
            for unit, p in _parameters("magnesium.yaml: elemental_units", table["elemental_units"], sources).items()
        },
        rxnorm_products=_rxnorm_products(derived, names),
    )


def _derived(tables: Mapping[str, Any], sources: Mapping[str, Source]) -> Mapping[str, Any] | None:
    derived = tables.get(RXNORM_TABLE)
    if derived:
        _cited(f"{RXNORM_TABLE}: provenance.source", derived["provenance"].get("source"), sources)
    return derived


def _drug_words(tables: Mapping[str, Any]) -> frozenset[str]:
    """Every word naming a drugs.yaml drug: magnesium after one of them is its counter-ion."""
    words: set[str] = set()
    for row in tables["drugs.yaml"]["classes"].values():
        for drug in row["drugs"]:
            for text in (drug["name"], *(drug.get("words") or ()), *(drug.get("brands") or ())):
                words.update(w for w in str(text).lower().split() if len(w) > 3)
    return frozenset(words)


def _rxnorm_products(derived: Mapping[str, Any] | None, salts: set[str]) -> dict[str, RxNormProduct]:
    """The derived table, checked: every salt it names is one magnesium.yaml knows."""
    if not derived:
        return {}
    columns = derived["columns"]
    out = {}
    for rxcui, row in derived["products"].items():
        ingredients = tuple(Ingredient(**dict(zip(columns, values, strict=True))) for values in row["ingredients"])
        unknown = [i.salt for i in ingredients if i.salt and i.salt not in salts]
        if unknown:
            raise KnowledgeError(f"{RXNORM_TABLE}: {rxcui}: unknown salt '{unknown[0]}' (re-derive the table)")
        out[str(rxcui)] = RxNormProduct(str(rxcui), row["name"], row["kind"], ingredients, tuple(row["drugs"]))
    return out


def _renal_estimate(row: Mapping[str, Any], sources: Mapping[str, Source]) -> str:
    where = "rules.yaml: renal_estimate"
    _cited(f"{where}.source", row.get("source"), sources)
    if row.get("value") not in (row.get("choices") or ()):
        raise KnowledgeError(f"{where}.value: must be one of its choices")
    return str(row["value"])


def _conditions(table: Mapping[str, Any], sources: Mapping[str, Source]) -> dict[str, ConditionSet]:
    out = {}
    coded_systems = frozenset(str(s) for s in table.get("coded_systems") or ())
    not_when = tuple(str(w).lower() for w in table.get("not_when") or ())
    for name, row in table["conditions"].items():
        where = f"conditions.yaml: {name}"
        _cited(f"{where}.source", row.get("source"), sources)
        codes = frozenset((c["system"], str(c["code"])) for c in row["codes"])
        at_most = {
            (c["system"], str(c["code"])): _number(c["at_most"], f"{where}.codes.{c['code']}.at_most")
            for c in row["codes"]
            if "at_most" in c
        }
        out[name] = ConditionSet(
            name,
            row["label"],
            codes,
            tuple(p.lower() for p in row.get("phrases") or ()),
            icd10_prefixes=tuple(str(p) for p in row.get("icd10_prefixes") or ()),
            at_most=at_most,
            coded_systems=coded_systems,
            not_when=not_when,
        )
    return out


def _rule(rule_id: str, row: Mapping[str, Any], sources: Mapping[str, Source], reasons: Mapping[str, str]) -> RuleSpec:
    where = f"rules.yaml: rules.{rule_id}"
    if row.get("indicator") not in INDICATORS:
        raise KnowledgeError(f"{where}.indicator: must be one of {sorted(INDICATORS)}")
    if row.get("evidence") not in EVIDENCE_GRADES:
        raise KnowledgeError(f"{where}.evidence: must be one of {sorted(EVIDENCE_GRADES)}")
    text = _texts(f"{where}.text", row.get("text") or {})
    for key in ("summary", "found", "do", "why"):
        if not text.get(key):
            raise KnowledgeError(f"{where}.text.{key}: missing")
    _check_anatomy(f"{where}.text", text)
    for code in row.get("override_reasons") or []:
        if code not in reasons:
            raise KnowledgeError(f"{where}.override_reasons: unknown code '{code}'")
    _check_suggestions(where, row)
    return RuleSpec(
        id=rule_id,
        title=row["title"],
        indicator=row["indicator"],
        evidence=row["evidence"],
        sources=_cited(f"{where}.source", row.get("source"), sources),
        parameters=_parameters(f"{where}.parameters", row.get("parameters"), sources),
        text=text,
        suggestions=tuple(row.get("suggestions") or ()),
        override_reasons=tuple(row.get("override_reasons") or ()),
        enabled=bool(row.get("enabled", True)),
        mode=str(row.get("mode", "live")),
        escalated_indicator=_escalated(where, row),
        variants={
            name: _variant(f"{where}.variants.{name}", name, v, sources, text)
            for name, v in (row.get("variants") or {}).items()
        },
        yields_to=tuple(str(r) for r in row.get("yields_to") or ()),
    )


TEXT_PARTS = ("summary", "found", "do", "why")  # each may have suffixed forms: summary_dialysis, do_low


def _texts(where: str, row: Mapping[str, Any]) -> dict[str, str]:
    """A rule's (or variant's) card texts, white space folded; `found` lists are kept one fact a line."""
    out = {}
    for key, value in row.items():
        if not isinstance(key, str) or key.split("_")[0] not in TEXT_PARTS:
            continue
        if key.startswith("found"):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise KnowledgeError(f"{where}.{key}: a list of fact templates")
            out[key] = "\n".join(" ".join(v.split()) for v in value)
        else:
            out[key] = " ".join(str(value).split())
    return out


def _check_suggestions(where: str, row: Mapping[str, Any]) -> None:
    """Every suggestion a rule or its variants name is in the registry (knowledge/suggestions.py)."""
    rows = [(where, row), *((f"{where}.variants.{n}", v) for n, v in (row.get("variants") or {}).items())]
    for place, item in rows:
        for key in (item.get("suggestions") or []) if isinstance(item, Mapping) else []:
            if key not in SUGGESTIONS:
                raise KnowledgeError(
                    f"{place}.suggestions: unknown suggestion '{key}' (known: {', '.join(sorted(SUGGESTIONS))})"
                )


def _check_anatomy(where: str, text: Mapping[str, str]) -> None:
    try:
        check_texts(where, text)
    except TemplateError as exc:
        raise KnowledgeError(str(exc)) from None


def _variant(where: str, name: str, row: Any, sources: Mapping[str, Source], base: Mapping[str, str]) -> RuleVariant:
    if not isinstance(row, Mapping) or not row.get("summary") or not row.get("when"):
        raise KnowledgeError(f"{where}: needs 'when' and 'summary'")
    if row.get("indicator") not in INDICATORS:
        raise KnowledgeError(f"{where}.indicator: must be one of {sorted(INDICATORS)}")
    text = _texts(where, row)
    _check_anatomy(where, {**base, **text})
    return RuleVariant(
        name=name,
        when=str(row["when"]),
        indicator=row["indicator"],
        text=text,
        suggestions=tuple(row.get("suggestions") or ()),
        sources=_cited(f"{where}.source", row.get("source"), sources),
    )


def _escalated(where: str, row: Mapping[str, Any]) -> str | None:
    value = row.get("escalated_indicator")
    if value is not None and value not in INDICATORS:
        raise KnowledgeError(f"{where}.escalated_indicator: must be one of {sorted(INDICATORS)}")
    return value


def _hours(value: Any, where: str) -> float | None:
    return None if value is None else _number(value, where)


# chelation: oral magnesium binds the drug (spacing); depletion: the drug wastes magnesium (check the
# level); risk: a low magnesium makes the drug dangerous (check and correct the level first).
DRUG_KINDS = ("chelation", "depletion", "risk")


def _drug_classes(
    table: Mapping[str, Any], sources: Mapping[str, Source], rules: Mapping[str, RuleSpec]
) -> dict[str, DrugClass]:
    out = {}
    for class_id, row in table["classes"].items():
        where = f"drugs.yaml: classes.{class_id}"
        if row.get("rule") not in rules:
            raise KnowledgeError(f"{where}.rule: unknown rule id '{row.get('rule')}'")
        if row.get("kind") not in DRUG_KINDS:
            raise KnowledgeError(f"{where}.kind: must be one of {', '.join(DRUG_KINDS)}")
        drugs = []
        for i, d in enumerate(row["drugs"]):
            here = f"{where}.drugs[{i}] ({d.get('name')})"
            if d.get("evidence") not in EVIDENCE_GRADES:
                raise KnowledgeError(f"{here}.evidence: must be one of {sorted(EVIDENCE_GRADES)}")
            if d.get("indicator") is not None and d["indicator"] not in INDICATORS:
                raise KnowledgeError(f"{here}.indicator: must be one of {sorted(INDICATORS)}")
            words = [
                d["name"].lower(),
                *(w.lower() for w in d.get("words") or ()),
                *(b.lower() for b in d.get("brands") or ()),
            ]
            drugs.append(
                Drug(
                    name=d["name"],
                    class_id=class_id,
                    rxnorm_in=tuple(str(c) for c in d.get("rxnorm_in") or ()),
                    atc=tuple(str(c).upper() for c in d.get("atc") or ()),
                    words=tuple(words),
                    sources=_cited(f"{here}.source", d.get("source"), sources),
                    evidence=d["evidence"],
                    before_h=_hours(d.get("before_h"), f"{here}.before_h"),
                    after_h=_hours(d.get("after_h"), f"{here}.after_h"),
                    indicator=d.get("indicator"),
                    min_daily_mg=_hours(d.get("min_daily_mg"), f"{here}.min_daily_mg"),
                    note=d.get("note"),
                    only_with=tuple(str(w).lower() for w in d.get("only_with") or ()),
                    long_term_days=_long_term_days(here, d.get("long_term_days"), sources),
                )
            )
        out[class_id] = DrugClass(class_id, row["rule"], row["kind"], row["label"], tuple(drugs))
    return out


def _order_reading(table: Mapping[str, Any], sources: Mapping[str, Source]) -> OrderReadingTable:
    where = "order_reading.yaml"
    route, use, setting = table["route"], table["use"], table["setting"]
    for section, row in (("route", route), ("use", use), ("setting", setting)):
        _cited(f"{where}: {section}.source", row.get("source"), sources)
    codes = {}
    for i, row in enumerate(route["codes"]):
        if row.get("class") not in ROUTE_CLASSES:
            raise KnowledgeError(f"{where}: route.codes[{i}].class: must be one of {', '.join(ROUTE_CLASSES)}")
        codes[(str(row["system"]), str(row["code"]))] = row["class"]
    classes = route["classes"]
    if list(classes) != list(ROUTE_CLASSES):
        raise KnowledgeError(f"{where}: route.classes: must list {', '.join(ROUTE_CLASSES)} in this order")
    words = tuple((name, frozenset(str(w).lower() for w in row["words"])) for name, row in classes.items())
    max_days = _parameters(f"{where}: use", {"short_course_max_days": use["short_course_max_days"]}, sources)
    kinds = {"inpatient", "outpatient"}
    if set(setting["codes"].values()) - kinds:
        raise KnowledgeError(f"{where}: setting.codes: values must be inpatient or outpatient")
    encounter = setting.get("encounter_class") or {}
    if set((encounter.get("codes") or {}).values()) - kinds:
        raise KnowledgeError(f"{where}: setting.encounter_class.codes: values must be inpatient or outpatient")
    return OrderReadingTable(
        route_codes=codes,
        route_words=words,
        short_course_max_days=max_days["short_course_max_days"].value,
        one_time_words=tuple(str(w).lower() for w in use["one_time_words"]),
        setting_system=str(setting["system"]),
        setting_codes={str(k): str(v) for k, v in setting["codes"].items()},
        encounter_class_system=str(encounter.get("system", "")),
        encounter_classes={str(k): str(v) for k, v in (encounter.get("codes") or {}).items()},
    )


def _gates(table: Mapping[str, Any], sources: Mapping[str, Source], rules: Mapping[str, RuleSpec]) -> dict[str, Gate]:
    out = {}
    for rule_id, row in table["rules"].items():
        where = f"gating.yaml: rules.{rule_id}"
        if rule_id not in rules:
            raise KnowledgeError(f"{where}: unknown rule id")
        if not row.get("reason"):
            raise KnowledgeError(f"{where}.reason: every row says why")
        sides = {side: _gate_side(f"{where}.{side}", row.get(side)) for side in ("magnesium", "partner")}
        if sides["magnesium"] is None and sides["partner"] is None:
            raise KnowledgeError(f"{where}: give magnesium and/or partner")
        cited = _cited(f"{where}.source", row.get("source"), sources) if row.get("source") else ()
        drugs: dict[str, GateSide] = {}
        for name, drug_row in (row.get("drugs") or {}).items():
            if not isinstance(drug_row, Mapping) or not drug_row.get("reason"):
                raise KnowledgeError(f"{where}.drugs.{name}: every exception says why (reason)")
            _cited(f"{where}.drugs.{name}.source", drug_row.get("source"), sources)
            side = _gate_side(f"{where}.drugs.{name}", {k: drug_row.get(k) for k in ("routes", "uses")})
            if side is not None:  # always, for a mapping: _gate_side is None only for an absent row
                drugs[str(name)] = side
        together = row.get("drafted_together")
        if together is not None:
            if not together.get("reason"):
                raise KnowledgeError(f"{where}.drafted_together: say why (reason)")
            _cited(f"{where}.drafted_together.source", together.get("source"), sources)
            together = _gate_side(f"{where}.drafted_together", {k: together.get(k) for k in ("routes", "uses")})
        not_for = tuple(str(x) for x in row.get("not_for") or ())
        if not_for:
            _cited(f"{where}.not_for_source", row.get("not_for_source"), sources)
        out[rule_id] = Gate(
            rule_id,
            sides["magnesium"],
            sides["partner"],
            " ".join(str(row["reason"]).split()),
            cited,
            drugs=drugs,
            drafted_together=together,
            not_for=not_for,
        )
    return out


def _not_a_supplement(
    table: Mapping[str, Any], sources: Mapping[str, Source], rules: Mapping[str, RuleSpec]
) -> dict[str, tuple[frozenset[str], str]]:
    """gating.yaml not_a_supplement: per kind (drug-salt, excipient), the rules that judge it and why."""
    out = {}
    for kind, row in table.items():
        where = f"gating.yaml: not_a_supplement.{kind}"
        if kind not in ("drug-salt", "excipient"):
            raise KnowledgeError(f"{where}: must be drug-salt or excipient")
        unknown = [r for r in row.get("rules") or () if r not in rules]
        if unknown or not row.get("reason"):
            raise KnowledgeError(f"{where}: " + (f"unknown rule id '{unknown[0]}'" if unknown else "say why (reason)"))
        _cited(f"{where}.source", row.get("source"), sources)
        out[kind] = (frozenset(row["rules"]), " ".join(str(row["reason"]).split()))
    return out


def _long_term_days(where: str, row: Any, sources: Mapping[str, Source]) -> float | None:
    if row is None:
        return None
    return _parameters(where, {"long_term_days": row}, sources)["long_term_days"].value


def _trace(row: Mapping[str, Any], sources: Mapping[str, Source], rules: Mapping[str, RuleSpec]) -> dict[str, Any]:
    if not row:
        return {}
    where = "gating.yaml: trace_magnesium"
    threshold = _parameters(where, {"below_mg_per_day": row["below_mg_per_day"]}, sources)["below_mg_per_day"]
    unknown = [r for r in row.get("rules") or () if r not in rules]
    if unknown or not row.get("reason"):
        raise KnowledgeError(f"{where}: " + (f"unknown rule id '{unknown[0]}'" if unknown else "say why (reason)"))
    return {"trace_below_mg_per_day": threshold.value, "trace_rules": frozenset(row["rules"])}


def _gate_side(where: str, row: Any) -> GateSide | None:
    if row is None:
        return None
    if not isinstance(row, Mapping) or set(row) != {"routes", "uses"}:
        raise KnowledgeError(f"{where}: must have routes and uses")
    for key, allowed in (("routes", ROUTE_CLASSES), ("uses", USES)):
        unknown = [v for v in row[key] or () if v not in allowed]
        if unknown:
            raise KnowledgeError(f"{where}.{key}: unknown '{unknown[0]}' (known: {', '.join(allowed)})")
    return GateSide(frozenset(row["routes"] or ()), frozenset(row["uses"] or ()))


def _check_renal_tiers(knowledge: Knowledge) -> None:
    tiers = [("renal-contraindicated", "below"), ("renal-severe", "below"), ("renal-moderate", "below")]
    values = [knowledge.rules[r].value(p) for r, p in tiers if r in knowledge.rules]
    if values != sorted(values) or len(set(values)) != len(values):
        raise KnowledgeError(
            "rules: renal tiers must increase: renal-contraindicated.below < renal-severe.below < renal-moderate.below"
        )


def _retention_days(params: list[Parameter], rules: Mapping[str, RuleSpec]) -> float:
    """How far back a lab can matter to any rule: the longest lookback in days, plus the 7-day creatinine-rise
    window. Labs older than this are parsed only if they are the newest of their kind (record/labs.py)."""
    params = params + [p for rule in rules.values() for p in rule.parameters.values()]
    return max(p.value for p in params if p.unit == "d") + 7
