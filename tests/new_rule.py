"""Proof that CONTRIBUTING.md is complete: in a throwaway copy of the repository, add a table-only rule
exactly as the guide says (a source, a drug class, a rules.yaml row, a gating row, a README table row,
a scenario that fires it and one that must stay silent), write the scenarios with fixtures/build.py,
and run the tests. It passes only if no other test or fixture needed an edit: every other scenario
folder must come out byte for byte unchanged.

    .venv/bin/python -m tests.new_rule [pytest arguments]   # default: the rule and scenario tests

tests/test_contributing.py runs it; it prints the copy's path when it fails.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RULE = "low-mg-throwaway"
DRUG = "throwawaycillin"  # no such drug: matched by name in the copy only
# The test files a new rule can touch: the catalogue, gating, the golden scenarios (through the API
# and through `evaluate`), readiness, the rule pages. The unit ones: no server needed.
DEFAULT_ARGS = (
    "-m",
    "unit",
    "tests/test_knowledge.py",
    "tests/test_gating.py",
    "tests/test_scenarios.py",
    "tests/test_contradictions.py",
    "tests/test_api.py",
    "tests/test_rule_pages.py",
)

# (file, the line to insert after, the text) - each step of CONTRIBUTING.md's worked example.
EDITS = (
    (  # 1. the source, with its status
        "cds_service/knowledge/sources.yaml",
        "sources:\n",
        "  throwaway-source:\n"
        '    citation: "A source invented for tests/new_rule.py; it never leaves the throwaway copy"\n'
        '    claim: "A low magnesium makes the throwaway drug dangerous."\n'
        "    status: UNVERIFIED\n",
    ),
    (  # 2a. the drug it is about (codes and names)
        "cds_service/knowledge/drugs.yaml",
        "classes:\n",
        "  throwaway:\n"
        f"    rule: {RULE}\n"
        "    kind: risk\n"
        "    label: throwaway drug\n"
        "    drugs:\n"
        f"      - {{name: {DRUG}, words: [{DRUG}], source: [throwaway-source], evidence: low}}\n",
    ),
    (  # 2b. the rule row
        "cds_service/knowledge/rules.yaml",
        "\nrules:\n",
        f"  {RULE}:\n"
        '    title: "Throwaway drug ordered while serum magnesium is low or unknown"\n'
        "    indicator: warning\n"
        "    escalated_indicator: info\n"
        "    evidence: low\n"
        "    source: [throwaway-source]\n"
        "    parameters:\n"
        "      lookback_days: {value: 90, unit: d, source: [service-lookback-policy], evidence: expert-opinion}\n"
        "    text:\n"
        '      summary: "{drug} with low serum Mg {value} {unit}: correct Mg first"\n'
        '      summary_unknown: "{drug} ordered: no serum Mg in {lookback} days; check it"\n'
        '      found: ["{mg_latest}"]\n'
        '      do: "Replete magnesium and check the level."\n'
        '      do_unknown: "Order serum magnesium now."\n'
        '      why: "A test of the contributing guide."\n'
        "    suggestions: [order-serum-magnesium-now]\n"
        "    override_reasons: [magnesium-being-corrected, lab-ordered-elsewhere]\n",
    ),
    (  # 3. which orders it judges
        "cds_service/knowledge/gating.yaml",
        "\nrules:\n",
        f"  {RULE}:\n"
        "    partner: {routes: *systemic, uses: *all_uses}\n"
        '    reason: "Every systemic dose of the throwaway drug."\n'
        "    source: [service-gating-policy]\n",
    ),
    (  # the catalogue people read
        "README.md",
        "| rule id | fires when (an order in scope + patient context) | suggestion |\n|---|---|---|\n",
        f"| `{RULE}` (warning; info if no level) | {DRUG} ordered while the latest Mg is low or unknown | serum Mg |\n",
    ),
    (  # 5. a scenario that fires it and one that must stay silent (4., the code: the risk family reads drugs.yaml)
        "fixtures/build.py",
        "SCENARIOS += [\n",
        f'    Scenario("{RULE}-low", "Throwaway drug with serum Mg 1.5 mg/dL", *MALE_50,\n'
        '             [*NORMAL_RENAL, Lab(MG, 1.5, "mg/dL", 4), K_CURRENT],\n'
        f'             orders=[Order("{DRUG.capitalize()} 10 mg tablet")], new_start=False,\n'
        f'             expect=[Expect("{RULE}", "warning", ("create",), ("1.5 mg/dL",))]),\n'
        f'    Scenario("{RULE}-normal", "Negative control: throwaway drug with a normal Mg", *MALE_50,\n'
        '             [*NORMAL_RENAL, Lab(MG, 2.0, "mg/dL", 4), K_CURRENT],\n'
        f'             orders=[Order("{DRUG.capitalize()} 10 mg tablet")], new_start=False),\n',
    ),
)


def copy_of_the_repository(target: Path) -> Path:
    """The tracked files (as a clean clone has them), or, outside git, the tree without caches."""
    listing = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=False)
    if listing.returncode == 0 and listing.stdout:
        for name in listing.stdout.decode().split("\0"):
            if name and (ROOT / name).is_file():
                (target / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, target / name)
    else:
        junk = shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.egg-info", "build", "data", ".*_cache")
        shutil.copytree(ROOT, target, ignore=junk, dirs_exist_ok=True)
    return target


def add_the_rule(copy: Path) -> None:
    for name, after, text in EDITS:
        path = copy / name
        content = path.read_text(encoding="utf-8")
        if after not in content:
            raise SystemExit(f"new_rule: {name} has no line {after!r} to add after: update tests/new_rule.py")
        anchor = content.rindex(after) if name == "fixtures/build.py" else content.index(after)
        at = anchor + len(after)
        path.write_text(content[:at] + text + content[at:], encoding="utf-8")


def scenario_digests(copy: Path) -> dict[str, str]:
    folder = copy / "fixtures" / "scenarios"
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*.json")}


def run(pytest_args: list[str], keep: bool = False) -> int:
    copy = copy_of_the_repository(Path(tempfile.mkdtemp(prefix="cds-new-rule-")) / "repo")
    shared = ROOT.parent / "shared"  # the third-party data and references beside the clone, as CI has them
    if shared.is_dir():
        (copy.parent / "shared").symlink_to(shared)
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTEST_XDIST_WORKER", None)
    keep_copy = True  # for a look at what failed; an interrupted run (SIGTERM) or a pass removes it
    try:
        before = scenario_digests(copy)
        add_the_rule(copy)
        build = subprocess.run([sys.executable, "fixtures/build.py"], cwd=copy, env=env, capture_output=True, text=True)
        if build.returncode != 0:
            print(f"new_rule: fixtures/build.py failed:\n{build.stdout}{build.stderr}")
            return 1
        after = scenario_digests(copy)
        changed = sorted(n for n in before if after.get(n) != before[n])
        added = sorted({n.split("/")[0] for n in set(after) - set(before)})
        if changed or added != [f"{RULE}-low", f"{RULE}-normal"]:
            print(f"new_rule: the new rule changed other scenarios {changed} or wrote {added}")
            return 1
        where = subprocess.run(
            [sys.executable, "-c", "import cds_service; print(cds_service.__file__)"],
            cwd=copy,
            env=env,
            text=True,
            capture_output=True,
        ).stdout
        if not where.startswith(str(copy)):
            print(f"new_rule: the copy's tests would import the package from {where.strip()}, not the copy")
            return 1
        tests = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *(pytest_args or DEFAULT_ARGS)],
            cwd=copy,
            env=env,
        )
        try:
            keep_copy = tests.wait() != 0
        except BaseException:  # stopped (a timeout's SIGTERM): stop the tests too, and remove the copy
            keep_copy = False
            tests.kill()
            tests.wait()
            raise
        return tests.returncode
    finally:
        if keep_copy or keep:
            print(f"new_rule: the copy with the rule added is kept at {copy}")
        else:
            shutil.rmtree(copy.parent, ignore_errors=True)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the copy is removed when stopped
    sys.exit(run(sys.argv[1:]))
