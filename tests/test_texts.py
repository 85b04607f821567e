"""A rule's texts as finding() fills them, planned once (clinical/texts.py): the variant's texts over the
rule's, a summary case's Found/Do/Why over the plain ones, sources and suggestions from both."""

from __future__ import annotations

import pytest

from cds_service.clinical.texts import TextPlans
from cds_service.knowledge import load_knowledge
from cds_service.knowledge.anatomy import placeholders

pytestmark = pytest.mark.unit
KNOWLEDGE = load_knowledge()


def test_a_summary_case_takes_its_own_texts_and_the_plain_ones_where_it_has_none() -> None:
    spec = KNOWLEDGE.rule("mg-low")
    plan = TextPlans(KNOWLEDGE).plan("mg-low", None, "summary_wasting")
    assert plan.summary == spec.text["summary_wasting"]
    assert plan.do == spec.text["do_wasting"]
    assert plan.found_lines == tuple(spec.text["found"].split("\n"))  # no found_wasting: the plain one
    assert plan.why == spec.text["why"]
    assert plan.needed == (*placeholders(spec.text["found"]), *placeholders(spec.text["do_wasting"]))
    assert plan.variant is None and plan.said == () and plan.suggestions == spec.suggestions


def test_a_variant_replaces_the_rules_texts_and_adds_its_sources() -> None:
    spec = KNOWLEDGE.rule("renal-severe")
    variant = spec.variants["treating-low"]
    plan = TextPlans(KNOWLEDGE).plan("renal-severe", "treating-low", "summary")
    assert plan.summary == {**spec.text, **variant.text}["summary"]
    assert plan.indicator == variant.indicator
    assert plan.suggestions == variant.suggestions
    assert plan.sources == tuple(dict.fromkeys((*spec.sources, *variant.sources)))
    assert plan.said == (f"Said as: {variant.when}",) and plan.variant == variant.name


def test_a_plan_is_made_once() -> None:
    plans = TextPlans(KNOWLEDGE)
    assert plans.plan("mg-low", None, "summary") is plans.plan("mg-low", None, "summary")
