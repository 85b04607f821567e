"""The package as shipped: `pip install .` alone must run the service (every third-party import is a
declared runtime dependency), the lock pins every dependency, the changelog names the version, and
the clinical core keeps to its import contract."""

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


# The import contract: the clinical core (what a pharmacist reviews and the rules that read it) knows
# nothing of HTTP, the FHIR client, the store, the card layer or tracing, so it can be tested and
# replayed (simulate) on its own. Its packages may import each other, the standard library and pure
# data libraries only.
CORE = ("clinical", "record", "knowledge", "protocol")
CORE_MAY_NOT_IMPORT = (
    *(f"cds_service.{name}" for name in ("app", "service", "cli", "cards", "fhir", "feedback", "memory", "security")),
    *("cds_service.pages", "cds_service.simulate", "cds_service.tracing", "cds_service.metrics", "cds_service.web"),
    "cds_service.pipeline",
    *("flask", "werkzeug", "requests", "sqlalchemy", "gunicorn", "opentelemetry", "prometheus_client"),
)


def _imports(path: Path) -> set[str]:
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            found.add(".".join([*base, *([node.module] if node.module else [])]))
    return found


def test_the_clinical_core_imports_no_outer_layer():
    broken = {
        f"{path.relative_to(ROOT)} imports {name}"
        for package in CORE
        for path in (ROOT / "cds_service" / package).rglob("*.py")
        for name in _imports(path)
        if any(name == bad or name.startswith(f"{bad}.") for bad in CORE_MAY_NOT_IMPORT)
    }
    assert not broken, sorted(broken)


def test_the_import_contract_sees_relative_imports():
    """The reader above, on this repository's own shapes: it must not pass by reading nothing."""
    imports = _imports(ROOT / "cds_service" / "clinical" / "rules" / "conditions.py")
    assert "cds_service.clinical.context" in imports, imports
