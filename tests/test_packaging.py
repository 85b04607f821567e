"""`pip install .` alone must run the service: every third-party import in the package is a declared
runtime dependency (not one that only arrives with the test extras)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_runtime_import_is_a_declared_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_normalise(re.split(r"[\[<>=!~ ]", d, maxsplit=1)[0]) for d in project["dependencies"]}
    imported = set()
    for path in (ROOT / "cds_service").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"cds_service", "__future__"}
    distributions = packages_distributions()
    missing = {
        name: distributions.get(name)
        for name in third_party
        if not {_normalise(d) for d in distributions.get(name, [name])} & declared
    }
    assert not missing, f"imported but not in [project.dependencies]: {missing}"
