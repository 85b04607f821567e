"""A rule's texts as finding() fills them, planned once (clinical/texts.py): the variant's texts over the
rule's, a summary case's Found/Do/Why over the plain ones, sources and suggestions from both."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from cds_service.clinical.texts import TextPlans
from cds_service.knowledge import load_knowledge
from cds_service.knowledge.anatomy import clip, placeholders
from cds_service.record import dates
from cds_service.record.dates import day, parse_datetime, parse_datetime_text

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


@given(
    st.one_of(
        st.text(st.sampled_from(" a\tb\n\xa0\u2028\x85é…"), max_size=30),
        st.text(max_size=30),
        st.floats(allow_nan=False),
        st.integers(),
    ),
    st.integers(1, 40),
)
@example("a  b", 10)
@example(" a", 5)
@example("a ", 5)
@example("a\tb", 5)
@example("a\xa0b", 5)
def test_clip_gives_what_joining_the_words_and_cutting_gives(value: object, limit: int) -> None:
    """clip's shortcut for a value already on one line must not change its answer."""
    text = " ".join(str(value).split())
    expected = text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
    assert clip(value, limit) == expected


def test_card_dates_are_day_english_month_year_in_any_locale() -> None:
    assert day(datetime(2026, 12, 3, 23, 59, tzinfo=UTC)) == "3 Dec 2026"
    assert [day(date(2025, month, 28)).split()[1] for month in range(1, 13)] == [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]  # fmt: skip


_STAMPS = st.one_of(
    st.datetimes(timezones=st.one_of(st.none(), st.timezones())).map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat().replace("+00:00", "Z") + "Z"),
    st.sampled_from(["2026", "2026-11", "2026-11-15", "20261115", " 2026-11-15T10:00:00Z", "2026-11-15T10:00:00Z ",
                     "2026-11-15T24:00:00Z", "2026-W46-1T10:00:00", "2026-11-15T10:00:00.1234567Z", "x" * 41]),
    st.text(max_size=45),
)  # fmt: skip


def _read_the_long_way(value: str) -> datetime | None:
    """parse_datetime's own reading, its memory bypassed: what every str took before the shortcut."""
    return dates._parse.__wrapped__(value) if 4 <= len(value) <= 40 else None


@given(_STAMPS)
@example("2026-11-15T10:00:00Z")
@example("2026-11-15T10:00:00")
@example("2026-11-15 ")
@example(" 2026-11-15")
@example("2026-11 ")
def test_a_timestamp_reads_as_it_did_before_the_shortcut_first_time_and_remembered(text: str) -> None:
    """A typed Observation's shortcut for a full dateTime, and the memory, give what the long way gives."""
    expected = _read_the_long_way(text)
    for got in (parse_datetime_text(text), parse_datetime(text), parse_datetime(text)):  # memory: a miss, a hit
        assert got == expected
        assert (got.tzinfo if got else None) == (expected.tzinfo if expected else None)
