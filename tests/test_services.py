"""The service registry: discovery is generated from the descriptors and the lab table, the shipped
hooks/discovery.json is that document, and a LOINC code added to labs.yaml is asked for."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from cds_service.config import Settings
from cds_service.protocol.schemas import discovery_document, validate
from cds_service.protocol.services import HOOKS, LEGACY_ID, ServiceRegistry

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def knowledge():
    return Settings().knowledge()


def test_the_shipped_discovery_is_the_generated_one(knowledge):
    registry = ServiceRegistry(knowledge)
    validate("discovery", registry.discovery())
    assert registry.discovery() == discovery_document()
    shipped = (Path(__file__).parents[1] / "hooks" / "discovery.json").read_text(encoding="utf-8")
    assert registry.discovery_text() == shipped, (
        "regenerate: .venv/bin/python -m cds_service.protocol.services > hooks/discovery.json"
    )


def test_a_code_added_to_the_lab_table_is_asked_for_by_every_service(knowledge):
    magnesium = knowledge.analytes["magnesium"]
    more = dataclasses.replace(magnesium, codes=(*magnesium.codes, "99999-9"))
    changed = dataclasses.replace(knowledge, analytes={**knowledge.analytes, "magnesium": more})
    for service in ServiceRegistry(changed).discovery()["services"]:
        assert "http://loinc.org|99999-9&" in service["prefetch"]["magnesium"]


def test_the_legacy_id_answers_both_order_hooks_unlisted(knowledge):
    registry = ServiceRegistry(knowledge)
    legacy = registry.get(LEGACY_ID)
    assert legacy is not None and not legacy.listed
    assert [h.name for h in legacy.hooks] == ["order-select", "order-sign"]
    assert LEGACY_ID not in {s["id"] for s in registry.discovery()["services"]}
    assert {registry.for_hook(h).hook.name for h in HOOKS.values()} == set(HOOKS)


def test_no_code_outside_the_registry_branches_on_a_hook_name():
    """What a hook means is asked of its descriptor (Hook.orders_drafted, selected_only, ...; on the record,
    `reviewing`), never of its name: a hook's name as a string literal appears in protocol/services.py only."""
    package = Path(__file__).parents[1] / "cds_service"
    names = [f'"{hook}"' for hook in HOOKS] + [f"'{hook}'" for hook in HOOKS]
    found = [
        f"{path.relative_to(package)}:{number}"
        for path in sorted(package.rglob("*.py"))
        if path.name != "services.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if any(name in line for name in names)
    ]
    assert found == []
