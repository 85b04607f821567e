"""`cds-service simulate` over a generated Bulk Data export (carebundle, fixed seeds) with magnesium,
ciprofloxacin and diuretic orders added at known dates: the figures against independent counts,
a few patients against `evaluate` at the same instants, shards merged equal to one run, and the HTML
report in headless Chromium."""

from __future__ import annotations

import csv
import gzip
import json
import random
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cds_service.cli import main
from cds_service.simulate.partition import stable_shard

from . import planted as planted_export
from .conftest import SHARED
from .test_browser import CHROMIUM_ARGS, DESKTOP, PHONE, _chromium
from .timing import scaled

TYPES = ("Patient", "MedicationRequest", "Observation", "Condition", "Encounter")
ADDED = [  # (name, RxNorm-free text the rules read by name)
    "magnesium oxide 400 MG Oral Tablet",
    "magnesium glycinate 500 mg capsule",
    "ciprofloxacin 500 MG Oral Tablet",
    "furosemide 40 MG Oral Tablet",
]
# Independent of the service's tables: the carebundle drugs a pharmacist knows a rule speaks about
# (diuretics and PPIs waste magnesium; gabapentin and levothyroxine chelate) and those it does not.
SPOKEN_ABOUT = ("magnesium", "ciprofloxacin", "furosemide", "hydrochlorothiazide", "omeprazole", "gabapentin",
                "levothyroxine", "doxycycline")  # fmt: skip
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
STOPPED = "doxycycline 100 MG Oral Capsule"  # a tetracycline: chelated by magnesium, a card while it runs


def _carebundle(out: Path, profile: str, count: int, seed: int, ages: str) -> None:
    exe = str(Path(sys.executable).with_name("carebundle"))
    command = [exe, "generate", "--profile", profile, "--sex", "mixed", "--count", str(count), "--seed", str(seed)]
    command += ["--age-range", ages, "--format", "ndjson", "--reference-date", "2026-01-01", "--out", str(out)]
    subprocess.run(command, check=True, capture_output=True, timeout=scaled(300))


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    """30 mixed + 20 CKD stage 3 patients; each gets 0-3 added orders in 2026, one order has no date."""
    root = tmp_path_factory.mktemp("export")
    for profile, count, seed, ages in (("mixed", 30, 5, "50-90"), ("ckd_stage3", 20, 6, "60-95")):
        _carebundle(root / profile, profile, count, seed, ages)
    out = root / "bulk"
    out.mkdir()
    rng = random.Random(11)
    for rtype in TYPES:
        lines = [
            line for p in ("mixed", "ckd_stage3") for line in (root / p / f"{rtype}.ndjson").read_text().splitlines()
        ]
        if rtype == "MedicationRequest":
            patients = [json.loads(line)["id"] for line in (root / "mixed" / "Patient.ndjson").read_text().splitlines()]
            patients += [
                json.loads(line)["id"] for line in (root / "ckd_stage3" / "Patient.ndjson").read_text().splitlines()
            ]
            for i, patient in enumerate(patients):
                for j in range(rng.randint(0, 3)):
                    when = datetime(2026, 1, 2, tzinfo=UTC) + timedelta(days=rng.randint(0, 180))
                    lines.append(json.dumps(_order(f"added-{i}-{j}", patient, rng.choice(ADDED), when)))
            undated = _order("added-undated", patients[0], ADDED[0], None)
            lines.append(json.dumps(undated))
            for i, patient in enumerate(patients):  # stopped 6.5 months before the first added order could be
                stopped = {**_order(f"stopped-{i}", patient, STOPPED, datetime(2025, 6, 15, tzinfo=UTC)),
                           "status": "stopped"}  # fmt: skip
                lines.append(json.dumps(stopped))
            statement = {  # a supplement the patient reported taking from 1 March: a start, replayed too
                "resourceType": "MedicationStatement",
                "id": "reported-mg",
                "status": "active",
                "subject": {"reference": f"Patient/{patients[1]}"},
                "medicationCodeableConcept": {"text": "magnesium citrate 200 mg tablet"},
                "effectivePeriod": {"start": "2026-03-01"},
            }
            (out / "MedicationStatement.ndjson").write_text(json.dumps(statement) + "\n")
        (out / f"{rtype}.ndjson").write_text("\n".join(lines) + "\n")
    return out


def _order(rid: str, patient: str, name: str, when: datetime | None) -> dict:
    order = {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": "active",
        "intent": "order",
        "subject": {"reference": f"Patient/{patient}"},
        "medicationCodeableConcept": {"text": name},
        "dosageInstruction": [{"text": "1 tablet daily", "timing": {"repeat": {"frequency": 1, "period": 1,
                                                                              "periodUnit": "d"}}}],
    }  # fmt: skip
    if when is not None:
        order["authoredOn"] = when.date().isoformat()
    return order


def _orders(export: Path) -> list[dict]:
    return [json.loads(line) for line in (export / "MedicationRequest.ndjson").read_text().splitlines() if line]


def _figures(out: Path) -> dict:
    return json.loads((out / "figures.json").read_text())


def test_figures_against_independent_counts(export, tmp_path, capsys):
    assert main(["simulate", str(export), "--out", str(tmp_path / "run"), "--workers", "2"]) == 0
    figures = _figures(tmp_path / "run")
    orders = _orders(export)
    dated = [o for o in orders if o.get("authoredOn")]
    spoken = [o for o in dated if any(w in o["medicationCodeableConcept"]["text"].lower() for w in SPOKEN_ABOUT)]
    assert figures["orders_read"] == len(orders) + 1  # and the reported MedicationStatement
    assert figures["orders_without_date"] == 1
    assert figures["orders_replayed"] == len(spoken) + 1
    spoken.append({"authoredOn": "2026-03-01"})
    assert figures["patients"] == 50
    by_month = {}
    for o in spoken:
        by_month[o["authoredOn"][:7]] = by_month.get(o["authoredOn"][:7], 0) + 1
    assert figures["orders_by_month"] == dict(sorted(by_month.items()))
    assert sum(int(k) * v for k, v in figures["cards_per_order"].items()) == figures["cards"]
    assert sum(figures["cards_by_rule"].values()) == figures["cards"]
    assert figures["cards"] > 0 and figures["orders_with_card"] <= figures["orders_replayed"]
    assert "interaction-fluoroquinolone" in figures["cards_by_rule"], "cipro beside magnesium in some patients"
    assert figures["rates"]["denominator"].startswith("orders replayed")
    assert "simulate:" in capsys.readouterr().err, "progress is shown"


# Ranks 0, 2 and 5 have a diuretic or a chelating partner among their added orders; rank 1 (three glycinate
# starts at 74 with normal kidneys) rightly gets no card since age alone is no reason for a recheck (issue 27).
@pytest.mark.parametrize("rank", [0, 2, 5])
def test_a_few_patients_against_evaluate_at_the_same_instants(export, tmp_path, capsys, rank):
    """The patients with the most added orders: simulate over just one of them equals `evaluate` of each
    of their orders on a bundle of what was recorded before it, at its own time."""
    orders = _orders(export)
    added = [o for o in orders if o["id"].startswith("added-") and o.get("authoredOn")]
    counts = Counter(o["subject"]["reference"] for o in added)
    patient = sorted(counts, key=lambda p: (-counts[p], p))[rank]
    pid = patient.split("/", 1)[1]
    mine = tmp_path / "one"
    mine.mkdir()
    resources = []
    for rtype in TYPES:
        rows = [json.loads(line) for line in (export / f"{rtype}.ndjson").read_text().splitlines() if line]
        rows = [r for r in rows if r.get("id") == pid or (r.get("subject") or {}).get("reference") == patient]
        (mine / f"{rtype}.ndjson").write_text("".join(json.dumps(r) + "\n" for r in rows))
        resources += rows
    assert main(["simulate", str(mine), "--out", str(tmp_path / "sim"), "--workers", "1"]) == 0
    simulated = _figures(tmp_path / "sim")["cards_by_rule"]
    expected: Counter = Counter()
    for order in [r for r in resources if r["resourceType"] == "MedicationRequest" and r.get("authoredOn")]:
        when = datetime.fromisoformat(order["authoredOn"]).replace(tzinfo=UTC)
        known = [r for r in resources if r is not order and _known_then(r, when)]
        # the encounter the order was written in is the one in progress when it was signed
        encounter = (order.get("encounter") or {}).get("reference", "").removeprefix("Encounter/")
        known += [
            {**r, "status": "in-progress"}
            for r in resources
            if r["resourceType"] == "Encounter" and r["id"] == encounter
        ]
        draft = {**order, "status": "draft"}
        bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in [*known, draft]]}
        path = tmp_path / f"{order['id']}.json"
        path.write_text(json.dumps(bundle))
        capsys.readouterr()
        assert main(["evaluate", str(path), "--order", order["id"], "--json", "--now", when.isoformat()]) == 0
        expected.update(card["source"]["topic"]["code"] for card in json.loads(capsys.readouterr().out)["cards"])
    assert sum(expected.values()) > 0, "the patient's orders give cards"
    assert simulated == dict(sorted(expected.items()))
    # The patient's doxycycline, stopped in June 2025 with no end date, is in both histories; neither the
    # replay nor `evaluate` takes it as running beside the 2026 magnesium orders (no tetracycline card).
    assert any(r["id"].startswith("stopped-") and r["status"] == "stopped" for r in resources)
    assert "interaction-tetracycline" not in simulated


def _known_then(resource: dict, when: datetime) -> bool:
    """Independently of the service: labs taken, conditions recorded and orders started before `when`."""
    rtype = resource["resourceType"]
    if rtype == "Patient":
        return True
    if rtype == "Observation":
        return datetime.fromisoformat(resource["effectiveDateTime"].replace("Z", "+00:00")) <= when
    if rtype == "Condition":
        recorded = resource.get("recordedDate") or resource.get("onsetDateTime")
        return recorded is None or datetime.fromisoformat(recorded.replace("Z", "+00:00")).replace(tzinfo=UTC) <= when
    if rtype == "Encounter":
        return False  # only the order's own (added by the caller)
    started = resource.get("authoredOn")
    return bool(started) and datetime.fromisoformat(started).replace(tzinfo=UTC) < when


def test_shards_merged_equal_one_run(export, tmp_path):
    """Partitioned once into 3, each shard replayed from its own files, merged: the one run's figures
    exactly; a shard missing or merged twice is refused."""
    assert main(["simulate", str(export), "--out", str(tmp_path / "all"), "--workers", "1"]) == 0
    assert main(["simulate", "partition", str(export), "--shards", "3", "--out", str(tmp_path / "part")]) == 0
    for i in range(3):
        run = ["simulate", str(tmp_path / "part"), "--out", str(tmp_path / f"s{i}"), "--shard", f"{i}/3"]
        assert main([*run, "--workers", "1"]) == 0
    shards = [str(tmp_path / f"s{i}") for i in range(3)]
    assert main(["simulate-merge", *shards, "--out", str(tmp_path / "merged")]) == 0
    whole, merged = _figures(tmp_path / "all"), _figures(tmp_path / "merged")
    assert merged["input"]["resources"] == whole["input"]["resources"] == whole["input"]["manifest_resources_kept"]
    for key in ("about", "input"):
        whole.pop(key), merged.pop(key)
    assert merged == whole
    assert main(["simulate-merge", *shards[:2], "--out", str(tmp_path / "m2")]) == 2, "a shard missing"
    assert main(["simulate-merge", *shards, shards[0], "--out", str(tmp_path / "m3")]) == 2, "a shard twice"
    assert main(["simulate", str(export), "--out", str(tmp_path / "x"), "--shard", "0/3"]) == 2, (
        "shards need a partition"
    )
    older = _figures(tmp_path / "s0")
    older.pop("input")  # as a shard written before partitions were counted
    (tmp_path / "s0" / "figures.json").write_text(json.dumps(older))
    assert main(["simulate-merge", *shards, "--out", str(tmp_path / "m4")]) == 2, "an older shard: named, no crash"


def test_a_window_replays_only_its_orders(export, tmp_path):
    assert (
        main(["simulate", str(export), "--out", str(tmp_path / "w"), "--since", "2026-04-01", "--until", "2026-05-01"])
        == 0
    )
    figures = _figures(tmp_path / "w")
    assert set(figures["orders_by_month"]) == {"2026-04"}
    assert figures["orders_without_date"] == 1, "an order without a date cannot be placed: always reported"


def test_compare_a_second_configuration(export, tmp_path):
    other = tmp_path / "other.yaml"
    other.write_text("rules: {interaction-fluoroquinolone: {enabled: false}}\n")
    assert (
        main(["simulate", str(export), "--out", str(tmp_path / "cmp"), "--compare", str(other), "--workers", "1"]) == 0
    )
    figures = _figures(tmp_path / "cmp")
    compared = next(iter(figures["compare"].values()))
    assert "interaction-fluoroquinolone" in figures["cards_by_rule"]
    assert "interaction-fluoroquinolone" not in compared["cards_by_rule"]
    assert compared["orders_replayed"] == figures["orders_replayed"]


def test_a_silent_rule_is_held_back_in_the_replay_as_in_the_service(export, tmp_path):
    """The replay runs the service's pipeline: a rule in `mode: silent` is evaluated and counted apart,
    never among the cards (before, the replay had no silent filter and counted its cards as shown)."""
    silent = tmp_path / "silent.yaml"
    silent.write_text("rules: {interaction-fluoroquinolone: {mode: silent}}\n")
    assert main(["simulate", str(export), "--out", str(tmp_path / "live"), "--workers", "1"]) == 0
    assert main(["simulate", str(export), "--out", str(tmp_path / "quiet"), "--config", str(silent)]) == 0
    live, quiet = _figures(tmp_path / "live"), _figures(tmp_path / "quiet")
    raised = live["cards_by_rule"].pop("interaction-fluoroquinolone")
    assert raised > 0 and live["silent_by_rule"] == {}
    assert quiet["silent_by_rule"] == {"interaction-fluoroquinolone": raised}
    assert quiet["cards_by_rule"] == live["cards_by_rule"], "the other rules are not touched"
    assert quiet["cards"] == live["cards"] - raised
    assert "Held back: silent rules" in (tmp_path / "quiet" / "report.html").read_text()


@pytest.mark.browser
def test_the_report_reads_at_desktop_and_phone_width(planted, tmp_path):
    """The committee's report of the planted export with a second configuration, in headless Chromium
    at desktop and phone width (screenshots beside the test's files): every chart drawn with its n on
    each bar, the outcome table and the association note shown, no sideways scrolling of the page."""
    export, _ = planted
    other = tmp_path / "other.yaml"
    other.write_text("rules: {monitoring-recheck: {enabled: false}}\n")
    run = ["simulate", str(export), "--out", str(tmp_path / "r"), "--workers", "1", "--compare", str(other)]
    assert main(run) == 0
    executable = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        for name, size in (("desktop", DESKTOP), ("phone", PHONE)):
            page = browser.new_page(viewport=size)
            problems = []
            page.on("console", lambda m, problems=problems: problems.append(m.text) if m.type == "error" else None)
            page.on("requestfailed", lambda r, problems=problems: problems.append(f"failed: {r.url}"))
            page.goto((tmp_path / "r" / "report.html").as_uri())
            page.screenshot(path=str(tmp_path / f"report-{name}.png"), full_page=True)
            charts = page.eval_on_selector_all("figure.chart", "fs => fs.map(f => f.querySelectorAll('.bar').length)")
            time_bars = page.eval_on_selector_all(  # per time chart: bars, and values with their n
                "figure.chart[aria-label*='orders by']",
                "fs => fs.map(f => [f.querySelectorAll('.bar').length,"
                " [...f.querySelectorAll('.bar-value')].filter(t => /\\(n=[0-9,]+\\)$/.test(t.textContent)).length])",
            )
            smallest = page.evaluate(  # every figure's text readable: no font below 12 px
                "Math.min(...[...document.querySelectorAll('.bar-label, .bar-value')]"
                ".map(e => parseFloat(getComputedStyle(e).fontSize)))"
            )
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            text = page.inner_text("body")
            page.close()
            assert problems == [], name
            assert len(charts) == 2 * 4 and all(n > 0 for n in charts), (name, charts)  # two configurations
            assert len(time_bars) == 2 * 2 and all(bars == with_n > 0 for bars, with_n in time_bars), time_bars
            assert overflow <= 0, f"{name}: the page scrolls sideways by {overflow}px"
            assert smallest >= 12, f"{name}: chart text at {smallest}px"
            assert "Associations, not effects" in text and "What each rule would have caught" in text
            assert "Magnesium-product orders" in text and "Side by side" in text
        browser.close()
    assert (tmp_path / "report-desktop.png").stat().st_size > 10_000 and (tmp_path / "report-phone.png").is_file()


SYNTHEA = SHARED / "data" / "synthea-r4"


@pytest.mark.slow
@pytest.mark.skipif(
    not SYNTHEA.is_dir(), reason=f"no third-party Synthea bundles at {SYNTHEA} (the 'shared' folder beside the clone)"
)
def test_a_folder_of_synthea_bundles(tmp_path):
    """Bundles with urn:uuid references work as well as Bulk Data: every order of every patient is read."""
    assert main(["simulate", str(SYNTHEA), "--out", str(tmp_path / "syn"), "--workers", "2"]) == 0
    figures = _figures(tmp_path / "syn")
    bundles = [json.loads(p.read_text()) for p in sorted(SYNTHEA.glob("*.json"))]
    orders = [
        e["resource"]
        for b in bundles
        for e in b["entry"]
        if e["resource"]["resourceType"] in ("MedicationRequest", "MedicationStatement")
        and e["resource"].get("status") != "entered-in-error"
    ]
    assert figures["patients"] == len(bundles) and figures["orders_read"] == len(orders)
    assert figures["orders_replayed"] > 0


def test_bad_input_is_named_never_a_crash(tmp_path, capsys):
    export = tmp_path / "bad"
    export.mkdir()
    (export / "Patient.ndjson").write_text('{"resourceType": "Patient", "id": "p1"}\n{oops\n')
    assert main(["simulate", str(export), "--out", str(tmp_path / "o1")]) == 2
    assert f"{export / 'Patient.ndjson'}:2: not JSON" in capsys.readouterr().err
    (export / "Patient.ndjson").write_text('{"resourceType": "Patient", "id": "p1", "birthDate": 1950}\n')
    odd = [
        {"resourceType": "MedicationRequest", "id": "m1", "status": "active", "subject": {"reference": "Patient/p1"},
         "authoredOn": "2026-02-01", "medicationCodeableConcept": "magnesium oxide", "dosageInstruction": "daily"},
        {"resourceType": "MedicationRequest", "id": "m2", "status": "active", "subject": {"reference": "Patient/p1"},
         "authoredOn": "2026-02-02", "medicationCodeableConcept": {"text": "magnesium oxide 400 MG Oral Tablet"},
         "dosageInstruction": [{"doseAndRate": "one"}]},
    ]  # fmt: skip
    (export / "MedicationRequest.ndjson").write_text("".join(json.dumps(o) + "\n" for o in odd))
    assert main(["simulate", str(export), "--out", str(tmp_path / "o2"), "--workers", "1"]) == 0
    figures = _figures(tmp_path / "o2")
    assert figures["orders_read"] == 2
    assert figures["orders_replayed"] + figures["orders_unreadable"] == 1, "the readable magnesium order; the other no"


def _wilson(k: int, n: int) -> list[float]:
    """Wilson 95 % interval, written out here apart from the service's."""
    z = 1.959964
    p = k / n
    centre, spread = p + z**2 / (2 * n), z * ((p * (1 - p) + z**2 / (4 * n)) / n) ** 0.5
    return [
        round(max(0.0, (centre - spread) / (1 + z**2 / n)), 4),
        round(min(1.0, (centre + spread) / (1 + z**2 / n)), 4),
    ]


def _planted_counts(planted: planted_export.Planted) -> tuple[Counter, Counter, Counter]:
    """From the plan alone: outcomes, labs asked and drawn (per rule|analyte), censored."""
    outcomes, asked, drawn = Counter(), Counter(), Counter()
    end = planted_export.END
    for _pid, kind, when, results in planted.orders:
        mgdl = [(days, value * (planted_export.MG_MMOL_TO_MGDL if unit == "mmol/L" else 1), limits)
                for days, value, unit, limits in results]  # fmt: skip
        if kind == "magnesium":
            event, window, rule, until = (
                "hypermagnesaemia",
                30,
                "monitoring-recheck",
                14 + 7,
            )  # due day 14, a week's grace
            abnormal = [v > (limits[1] if limits else 2.6) for days, v, limits in mgdl if days <= window]
        else:
            event, window, rule, until = "hypomagnesaemia", 90, "depletion-diuretic", 0 + 7  # due now
            abnormal = [v < (limits[0] if limits else 1.8) for days, v, limits in mgdl if days <= window]
        if when + timedelta(days=window) > end:
            outcomes[f"{event}|censored"] += 1
        else:
            outcomes[f"{event}|eligible"] += 1
            outcomes[f"{event}|measured"] += bool(abnormal)
            outcomes[f"{event}|happened"] += any(abnormal)
        key = f"{rule}|magnesium"
        if when + timedelta(days=until) > end:
            asked[f"censored {key}"] += 1
        else:
            asked[key] += 1
            drawn[key] += any(days <= until for days, _, _ in mgdl)
    return +outcomes, asked, drawn


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> tuple[Path, planted_export.Planted]:
    """400 patients, gzip NDJSON, orders coded by RxNorm alone and no Medication resources."""
    out = tmp_path_factory.mktemp("planted") / "bulk"
    return out, planted_export.generate(out, 400, seed=3, gz=True)


def test_outcomes_of_a_planted_export_match_counts_from_the_plan(planted, tmp_path):
    export, plan = planted
    assert main(["simulate", str(export), "--out", str(tmp_path / "run"), "--workers", "2"]) == 0
    figures = _figures(tmp_path / "run")
    outcomes, asked, drawn = _planted_counts(plan)
    assert figures["outcomes"] == dict(sorted(outcomes.items()))
    assert figures["labs_asked"] == {k: n for k, n in sorted(asked.items()) if not k.startswith("censored")}
    assert figures["labs_drawn"] == dict(sorted(drawn.items()))
    censored = {k.removeprefix("censored "): n for k, n in asked.items() if k.startswith("censored")}
    assert figures["labs_censored"] == dict(sorted(censored.items()))
    hyper, hypo = outcomes["hypermagnesaemia|happened"], outcomes["hypomagnesaemia|happened"]
    assert hyper > 0 and hypo > 0 and outcomes["hypermagnesaemia|censored"] > 0, "the plan covers every case"
    # Every magnesium order is an at-risk new start (the recheck card), every furosemide order has no Mg
    # in the lookback (the depletion card): each event followed an order the rule fired on.
    assert figures["caught_by_rule"]["hypermagnesaemia|monitoring-recheck"] == hyper
    assert figures["caught_by_rule"]["hypomagnesaemia|depletion-diuretic"] == hypo
    mg_orders = sum(1 for o in plan.orders if o[1] == "magnesium")
    kinds = figures["rates"]["orders_by_kind"]
    assert kinds["magnesium"]["orders_replayed"] == figures["cards_by_rule"]["monitoring-recheck"] == mg_orders
    assert kinds["depletion"]["orders_replayed"] == len(plan.orders) - mg_orders
    assert kinds["chelation"]["orders_replayed"] == plan.running_doxycycline + plan.stopped_doxycycline
    # a doxycycline stopped 6.5 months before draws no card; one running (a 10-day course) does
    assert figures["cards_by_rule"]["interaction-tetracycline"] == plan.running_doxycycline
    events = figures["rates"]["events"]["hypermagnesaemia"]
    assert events["ci95"] == _wilson(hyper, outcomes["hypermagnesaemia|eligible"])
    rows = {(r["rule"], r["measure"].split(":")[0]): r for r in figures["rates"]["outcomes_by_rule"]}
    recheck = rows[("monitoring-recheck", "caught")]
    assert (recheck["numerator"], recheck["denominator"], recheck["proportion"]) == (hyper, hyper, 1.0)
    assert recheck["cards_per_event_caught"] == round(mg_orders / hyper, 1)
    follow = rows[("monitoring-recheck", "follow-through")]
    assert follow["ci95"] == _wilson(drawn["monitoring-recheck|magnesium"], asked["monitoring-recheck|magnesium"])
    with (tmp_path / "run" / "outcomes_by_rule.csv").open() as f:
        csv_rows = list(csv.DictReader(f))
    row = next(r for r in csv_rows if r["rule"] == "monitoring-recheck" and r["measure"].startswith("caught"))
    assert (int(row["numerator"]), int(row["denominator"])) == (hyper, hyper)
    assert "not effects" in (tmp_path / "run" / "report.html").read_text()


def test_a_planted_export_partitioned_merges_to_one_run_with_its_outcomes(planted, tmp_path):
    export, _ = planted
    assert main(["simulate", str(export), "--out", str(tmp_path / "all"), "--workers", "1"]) == 0
    assert main(["simulate", "partition", str(export), "--shards", "4", "--out", str(tmp_path / "part")]) == 0
    manifest = json.loads((tmp_path / "part" / "manifest.json").read_text())
    kept = sum(row["bytes"] for row in manifest["shard_counts"])
    for i in range(4):
        assert main(["simulate", str(tmp_path / "part"), "--out", str(tmp_path / f"s{i}"), "--shard", f"{i}/4"]) == 0
        shard_bytes = manifest["shard_counts"][i]["bytes"]
        assert 0 < shard_bytes <= 1.2 * kept / 4 + 2000, "each shard reads about 1/N (a small export: a margin)"
        files = [tmp_path / "part" / f for b in manifest["shard_counts"][i]["buckets"] for f in b["files"]]
        patients = {json.loads(line.split(b"\t", 1)[0]) for f in files for line in f.read_bytes().splitlines()}
        assert patients and {stable_shard(p, 4) for p in patients} == {i}, "a patient's shard is its stable hash"
    assert main(["simulate-merge", *(str(tmp_path / f"s{i}") for i in range(4)), "--out", str(tmp_path / "m")]) == 0
    whole, merged = _figures(tmp_path / "all"), _figures(tmp_path / "m")
    for key in ("about", "input"):
        whole.pop(key), merged.pop(key)
    assert merged == whole and merged["outcomes"] and merged["caught_by_rule"]


def test_the_setting_is_read_from_the_orders_encounter_as_the_service_reads_it(tmp_path, capsys):
    """The same IV furosemide order in an inpatient encounter (read as an IV protocol: no magnesium check
    asked) and in an outpatient one (a check asked): the replay gives each the cards `evaluate` gives
    with that encounter in progress; the export is gzip NDJSON."""
    resources, cards = [], {}
    for pid, klass in (("inpatient", "IMP"), ("outpatient", "AMB")):
        encounter = {"resourceType": "Encounter", "id": f"{pid}-e", "status": "finished",
                     "subject": {"reference": f"Patient/{pid}"},
                     "class": {"system": ACT_CODE, "code": klass}}  # fmt: skip
        order = {"resourceType": "MedicationRequest", "id": f"{pid}-o", "status": "active", "intent": "order",
                 "subject": {"reference": f"Patient/{pid}"}, "encounter": {"reference": f"Encounter/{pid}-e"},
                 "authoredOn": "2026-03-01T10:00:00Z",
                 "medicationCodeableConcept": {"text": "furosemide 10 mg/mL injection"},
                 "dosageInstruction": [{"route": {"text": "intravenous"}, "text": "40 mg IV"}]}  # fmt: skip
        patient = {"resourceType": "Patient", "id": pid, "birthDate": "1940-01-01", "gender": "female"}
        creatinine = {"resourceType": "Observation", "id": f"{pid}-cr", "status": "final",
                      "subject": {"reference": f"Patient/{pid}"}, "effectiveDateTime": "2026-02-20",
                      "code": {"coding": [{"system": "http://loinc.org", "code": "2160-0"}]},
                      "valueQuantity": {"value": 0.6, "unit": "mg/dL", "code": "mg/dL"}}  # fmt: skip
        resources += [patient, encounter, order, creatinine]
        bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
            {"resource": patient}, {"resource": {**encounter, "status": "in-progress"}}, {"resource": creatinine},
            {"resource": {**order, "status": "draft"}}]}  # fmt: skip
        (tmp_path / f"{pid}.json").write_text(json.dumps(bundle))
        capsys.readouterr()
        assert main(["evaluate", str(tmp_path / f"{pid}.json"), "--json", "--now", "2026-03-01T10:00:00Z"]) == 0
        cards[pid] = Counter(c["source"]["topic"]["code"] for c in json.loads(capsys.readouterr().out)["cards"])
    assert cards["inpatient"] != cards["outpatient"], "the setting changes the cards"
    for pid in cards:
        one = tmp_path / f"only-{pid}"
        one.mkdir()
        for rtype in ("Patient", "Encounter", "MedicationRequest", "Observation"):
            rows = [r for r in resources if r["resourceType"] == rtype and pid in json.dumps(r)]
            with gzip.open(one / f"{rtype}.ndjson.gz", "wt") as f:
                f.write("".join(json.dumps(r) + "\n" for r in rows))
        assert main(["simulate", str(one), "--out", str(tmp_path / f"sim-{pid}"), "--workers", "1"]) == 0
        assert Counter(_figures(tmp_path / f"sim-{pid}")["cards_by_rule"]) == cards[pid]


def test_partition_in_byte_ranges_by_two_writers_loses_and_repeats_nothing(tmp_path, monkeypatch):
    """Large files are read in byte ranges by several writers (here ranges of 4 KiB, so lines cross
    every boundary): the same resources land in the same shards as one writer reading whole files."""
    from cds_service.simulate import partition as partitioning

    export = tmp_path / "bulk"
    planted_export.generate(export, 120, seed=9)
    assert main(["simulate", "partition", str(export), "--shards", "2", "--out", str(tmp_path / "one"),
                 "--workers", "1"]) == 0  # fmt: skip
    monkeypatch.setattr(partitioning, "SPLIT_BYTES", 4096)
    assert main(["simulate", "partition", str(export), "--shards", "2", "--out", str(tmp_path / "two"),
                 "--workers", "2"]) == 0  # fmt: skip
    one, two = (json.loads((tmp_path / p / "manifest.json").read_text()) for p in ("one", "two"))
    lines = sum(len(p.read_text().splitlines()) for p in export.glob("*.ndjson"))
    assert one["resources_read"] == two["resources_read"] == lines
    for a, b in zip(one["shard_counts"], two["shard_counts"], strict=True):
        assert (a["by_type"], a["bytes"]) == (b["by_type"], b["bytes"])
    for name in ("one", "two"):
        assert main(["simulate", str(tmp_path / name), "--out", str(tmp_path / f"r{name}"), "--shard", "0/2"]) == 0
    assert _figures(tmp_path / "rone")["cards_by_rule"] == _figures(tmp_path / "rtwo")["cards_by_rule"]


def test_medications_by_reference_and_a_broken_gzip_file(tmp_path, capsys):
    """Orders that name a Medication resource (looked up in the partition's Medication store), or only
    its display (Epic, no Medication exported), are read; a proposal and a draft are counted, not
    replayed; a truncated gzip file is named, exit 2."""
    export = tmp_path / "bulk"
    export.mkdir()
    medication = {"resourceType": "Medication", "id": "m1", "code": {"coding": [planted_export.MG_OXIDE]}}
    orders = [
        {"resourceType": "MedicationRequest", "id": f"o{i}", "status": "active", "intent": "order",
         "subject": {"reference": "Patient/p1"}, "authoredOn": f"2026-0{i + 1}-01", "medicationReference": ref}
        for i, ref in enumerate(({"reference": "Medication/m1"},
                                 {"reference": "Medication/absent", "display": "Magnesium Oxide 400 MG Oral Tablet"}))
    ]  # fmt: skip
    orders += [{**orders[0], "id": "proposed", "intent": "proposal"}, {**orders[0], "id": "drafted", "status": "draft"}]
    for rtype, rows in (("Patient", [{"resourceType": "Patient", "id": "p1", "birthDate": "1940-01-01"}]),
                        ("Medication", [medication]), ("MedicationRequest", orders)):  # fmt: skip
        with gzip.open(export / f"{rtype}.ndjson.gz", "wt") as f:
            f.write("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["simulate", str(export), "--out", str(tmp_path / "run"), "--workers", "1"]) == 0
    figures = _figures(tmp_path / "run")
    assert figures["rates"]["orders_by_kind"]["magnesium"]["orders_replayed"] == 2
    assert (figures["orders_read"], figures["orders_not_signed"]) == (4, 2), "a proposal and a draft: never signed"
    assert figures["products_by_rule"], "cards name the product read from the Medication or the display"
    data = (export / "MedicationRequest.ndjson.gz").read_bytes()
    (export / "MedicationRequest.ndjson.gz").write_bytes(data[: len(data) // 2])
    assert main(["simulate", str(export), "--out", str(tmp_path / "broken"), "--workers", "1"]) == 2
    assert f"{export / 'MedicationRequest.ndjson.gz'}: cannot be read" in capsys.readouterr().err
