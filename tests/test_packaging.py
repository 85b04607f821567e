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


def test_every_package_folder_is_listed_for_setuptools():
    """A folder left out of [tool.setuptools] packages is silently missing from `pip install .`
    (the security package once was: only editable installs worked)."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "cds_service").rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    assert found - listed == set(), f"packages not listed in pyproject.toml: {sorted(found - listed)}"
