"""The package as shipped: `pip install .` alone must run the service (every third-party import is a
declared runtime dependency), the lock pins every dependency, the changelog names the version, and
every module is under the import contract."""

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


def test_the_lock_pins_every_dependency_within_its_range():
    """requirements.lock (scripts/lock.sh) is what CI and the image install: every runtime and test
    dependency of pyproject.toml has exactly one pinned version there, and it satisfies the range."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version.strip()
    for text in [*project["dependencies"], *project["optional-dependencies"]["test"]]:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not in requirements.lock: run scripts/lock.sh"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {requirement.name}=={pins[name]}, outside {requirement.specifier}: "
            "run scripts/lock.sh"
        )


def test_the_changelog_names_the_version():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    released = re.findall(r"^## \[?(\d+\.\d+\.\d+)\]?", changelog, re.M)
    assert released and released[0] == version, f"CHANGELOG.md's newest release {released[:1]} is not {version}"


# The import contract itself is checked by `lint-imports` ([tool.importlinter] in pyproject.toml; run by
# scripts/test.sh and pre-commit). import-linter checks only the modules a contract names: a new
# package left out of them could import anything unseen.
def test_every_module_of_the_package_is_under_the_import_contract():
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = next(c for c in contracts if c["type"] == "layers")
    named = {name.strip() for layer in layers["layers"] for name in layer.replace(":", "|").split("|")}
    named |= {
        source.removeprefix("cds_service.")
        for contract in contracts
        if contract["type"] == "forbidden"
        for source in contract["source_modules"]
    }
    found = {
        path.stem if path.suffix == ".py" else path.name
        for path in (ROOT / "cds_service").iterdir()
        if (path.suffix == ".py" and path.stem != "__init__") or (path / "__init__.py").is_file()
    }
    data_only = {"hooks"}  # the CDS Hooks contracts (JSON Schemas and discovery): no Python imports
    assert found - named - data_only == set(), f"modules no import contract names: {sorted(found - named - data_only)}"
