"""dose-above-ul and duplicate-magnesium: elemental magnesium per day, computed and shown."""

from __future__ import annotations

from ..context import MagnesiumProduct, RuleContext, recognised_as, short_name
from ..findings import Finding
from ..matching import words_of
from .family import Family, says
from .labs import obstetric_indication


def evaluate(ctx: RuleContext) -> list[Finding]:
    above = _above_upper_limit(ctx) if ctx.runs("dose-above-ul") else []
    return [*above, *(_duplicates(ctx) if ctx.runs("duplicate-magnesium") else [])]


def upper_limit(ctx: RuleContext, age: float) -> float | None:
    """Tolerable upper intake (supplemental Mg) for age; none is established under 1 year."""
    spec = ctx.knowledge.rule("dose-above-ul")
    if age < 1:
        return None
    if age < 4:
        return spec.value("ul_age_1_3")
    if age < 9:
        return spec.value("ul_age_4_8")
    return spec.value("ul_age_9_plus")


def _above_upper_limit(ctx: RuleContext) -> list[Finding]:
    age = ctx.record.age_at(ctx.record.now)
    if age is None:
        return []
    limit = upper_limit(ctx, age)
    spec = ctx.knowledge.rule("dose-above-ul")
    findings = []
    for product in ctx.magnesium:
        if not product.in_scope:
            continue
        if obstetric_indication(ctx, product) is not None or _not_judged(ctx, product):
            continue  # a treatment dose, a laxative: the supplement upper limit does not apply
        dose = product.dose
        if limit is None or dose.mg_per_day is None or dose.mg_per_day <= limit:
            continue
        child = age < spec.value("warn_below_age")
        found = (
            f"Daily elemental magnesium: {dose.how}" + (" (as needed: maximum use)" if dose.as_needed else ""),
            f"Upper limit for age {int(age)} y: {limit:g} mg/day from supplements and medicines",
        )
        findings.append(
            ctx.finding(
                "dose-above-ul",
                product.entry,
                recognised_as(product.match),
                found=found,
                indicator=spec.escalated_indicator if child else None,
                daily=f"{dose.mg_per_day:.0f}",
                ul=f"{limit:g}",
                age=f"{int(age)} y",
                dose=dose.how + ("; as needed, at the maximum use" if dose.as_needed else ""),
            )
        )
    return findings


def _not_judged(ctx: RuleContext, product: MagnesiumProduct) -> bool:
    """gating.yaml dose-above-ul not_for: a laxative, documented hypomagnesaemia being treated, or a drug class
    whose magnesium wasting is being treated (a calcineurin inhibitor)."""
    gate = ctx.knowledge.gates.get("dose-above-ul")
    for context in gate.not_for if gate else ():
        if context == "laxative" and is_laxative(ctx, product):
            return True
        if context == "treating-low" and ctx.treatment.treating_low:
            return True
        if any(p.hit.drug_class.id == context for p in ctx.partners):
            return True
    return False


def is_laxative(ctx: RuleContext, product: MagnesiumProduct) -> bool:
    """By ATC code, or a laxative word in the product's name or the order's reason (magnesium.yaml laxative)."""
    tables = ctx.knowledge.magnesium
    entry = product.entry
    if any(c.code and c.code.upper().startswith(tables.laxative_atc) for c in entry.codings if tables.laxative_atc):
        return True
    reasons = [r.text or " ".join(c.display or "" for c in r.codings) for r in entry.reasons]
    text = " ".join((entry.name, product.match.product_name, *reasons)).lower()
    joined = f" {' '.join(words_of(text))} "
    return any(f" {word} " in joined for word in tables.laxative_words)


def _duplicates(ctx: RuleContext) -> list[Finding]:
    findings = []
    seen_pairs: set[frozenset[str]] = set()
    for product in ctx.magnesium:
        if not product.in_scope:
            continue
        for other in ctx.magnesium:
            pair = frozenset((product.entry.reference, other.entry.reference))
            if other is product or len(pair) < 2 or pair in seen_pairs:
                continue
            if same_product(product, other) or one_plan(product, other):
                continue
            seen_pairs.add(pair)
            findings.append(_duplicate(ctx, product, other))
    return findings


def one_plan(a: MagnesiumProduct, b: MagnesiumProduct) -> bool:
    """A parenteral dose beside an enteral one is a repletion plan (IV load, oral follow-on), not a duplicate."""
    return {a.reading.route, b.reading.route} == {"parenteral", "enteral"}


def same_product(a: MagnesiumProduct, b: MagnesiumProduct) -> bool:
    """A renewal of what the patient already takes (same RxNorm product, same name, or priorPrescription)
    is a continuation, not a duplicate. The same product drafted twice in one signing is no renewal."""
    prior = a.entry.prior_prescription
    if prior and prior == b.entry.reference:
        return True
    if a.entry.origin == "draft" and b.entry.origin == "draft":
        return False
    rxnorm = "http://www.nlm.nih.gov/research/umls/rxnorm"
    codes_a = {c.code for c in a.entry.codings if c.system == rxnorm and c.code}
    if codes_a & {c.code for c in b.entry.codings if c.system == rxnorm and c.code}:
        return True
    return bool(a.entry.name) and " ".join(a.entry.name.lower().split()) == " ".join(b.entry.name.lower().split())


def _duplicate(ctx: RuleContext, product: MagnesiumProduct, other: MagnesiumProduct) -> Finding:
    doses = [product.dose, other.dose]
    found = [
        f"This order: {short_name(product.entry.name, 60)} ({product.entry.reference}): {doses[0].how}",
        f"Also {'active' if other.entry.origin == 'active' else 'drafted'}: {short_name(other.entry.name, 60)} "
        f"({other.entry.reference}): {doses[1].how}",
    ]
    total = ""
    other_name = short_name(other.entry.name or other.match.salt_label, 40)
    both = f"Also {'taken' if other.entry.origin == 'active' else 'ordered'}: {other_name}"
    per_day = [d.mg_per_day for d in doses if d.mg_per_day is not None]
    if len(per_day) == len(doses):
        combined = sum(per_day)
        found.append(f"Combined: {combined:.0f} mg elemental magnesium/day")
        total = f"; {combined:.0f} mg elemental Mg/day in total"
        both += f"; together {combined:.0f} mg elemental Mg a day"
    else:
        found.append("Combined elemental dose not computable (see above)")
    if {product.reading.route, other.reading.route} == {"parenteral"} and other.entry.origin == "draft":
        found.append("Two parenteral magnesium orders in one signing: IV magnesium is a high-alert electrolyte (ISMP)")
    return ctx.finding(
        "duplicate-magnesium",
        product.entry,
        recognised_as(product.match),
        found=tuple(found),
        partner=other.entry,
        merge_key=other.entry.reference,
        other=other_name,
        total=total,
        both=both,
    )


FAMILY = Family(
    "dosing",
    evaluate,
    {
        "dose-above-ul": says("daily", "ul", "age", "dose"),
        "duplicate-magnesium": says("other", "total", "both"),
    },
)
