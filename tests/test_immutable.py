"""@immutable: frozen for the type checker, a plain slots dataclass at run time, equal and hashed by value."""

from __future__ import annotations

import textwrap
from dataclasses import field, replace
from pathlib import Path

from mypy import api

from cds_service.immutable import immutable


@immutable
class Result:
    name: str
    value: float
    note: str = field(default="", compare=False)


def test_equal_and_hashed_by_value_without_the_fields_left_out_of_comparison() -> None:
    assert Result("Mg", 0.7, "first") == Result("Mg", 0.7, "second")
    assert hash(Result("Mg", 0.7, "first")) == hash(Result("Mg", 0.7, "second"))
    assert Result("Mg", 0.7) != Result("Mg", 0.8)
    assert len({Result("Mg", 0.7), Result("Mg", 0.7), Result("K", 4.0)}) == 2


def test_slots_and_replace_as_a_frozen_dataclass_has_them() -> None:
    result = Result("Mg", 0.7)
    assert not hasattr(result, "__dict__")
    assert replace(result, value=0.9) == Result("Mg", 0.9)


def test_an_assignment_to_a_field_fails_the_type_check(tmp_path: Path) -> None:
    """What keeps the values immutable: mypy reads @immutable as a frozen dataclass (PEP 681)."""
    source = tmp_path / "assigns.py"
    source.write_text(
        textwrap.dedent(
            """
            from cds_service.immutable import immutable

            @immutable
            class Result:
                value: float

            Result(1.0).value = 2.0
            """
        )
    )
    out, _, status = api.run([str(source), "--strict", "--no-incremental", "--cache-dir", str(tmp_path / "cache")])
    assert status == 1
    assert 'Property "value" defined in "Result" is read-only' in out
