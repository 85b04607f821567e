"""Budget benchmark: how much of a typical call the engine may take if the service is to stay within 2x
of the parse-only baseline, against what it takes.

    python bench/budget.py [--rounds 7] [--calls 300] [--output FILE]

Through Flask's test client, at the production log level (INFO, one JSON line per call to a file),
interleaved rounds of each variant on the typical order-sign body:
- baseline: bench/baseline_app.py, which parses the body and answers {"cards": []}, **in a process of
  its own** (a child that measures a block of calls when asked): in the service's process the baseline
  read 0.85 ms where alone it takes 0.63 (the service's heap, caches and collector slowed it), which
  made the service look closer to it than two servers are;
- service: the real app;
- service, engine free: the same app, with `CdsService.call` answering the response it gave for this
  body once, so parsing, the request hooks, metrics, the log line, card recording and the response are
  measured as in production and the engine (prefetch, record, rules, cards) costs nothing;
- engine: `CdsService.call` alone on a freshly parsed body (parsing not timed).
The engine's budget is 2 x baseline minus "service, engine free": what is left for it within the target.
It is compared with the engine alone and with "service" minus "service, engine free": the engine as a
served call pays for it, its garbage and the caches it evicts from the rest of the path included.
Each variant runs a block of calls at a time (its caches warm, as each server has its own process):
calling the variants in turn, call by call, made the baseline 2.5x slower (its path evicted by the
service's calls in the same process), which no separate baseline server would suffer.
Prints the medians (median of the rounds' medians) and writes bench/results/budget.json (or --output).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging.config
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from common import machine, print_table, write_result
from workload import NOW, request

from cds_service import fastjson
from cds_service.app import create_app
from cds_service.config import Settings, StoreSettings
from cds_service.logs import logging_config

SERVICE_ID = "magnesium-order-sign"
PATH = f"/cds-services/{SERVICE_ID}"


def median_ms(call: Callable[[], object], calls: int) -> float:
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def run(rounds: int, calls: int) -> dict:
    data_dir = Path(tempfile.mkdtemp(prefix="cds-budget-"))
    sys.stderr = (data_dir / "service.log").open("w")  # the log line is written, as a container's stdout would be
    try:
        logging.config.dictConfig(logging_config("INFO"))
        app = create_app(Settings(now=NOW, store=StoreSettings(data_dir=data_dir)))
        service = app.extensions["cds_service"]
        body = json.dumps(request(200, 20)).encode()
        answer = service.call(SERVICE_ID, fastjson.loads(body), base_url="http://localhost")
        real_call = service.call
        service_client = app.test_client()
        baseline = _BaselineProcess(calls)
        gc.collect()
        gc.freeze()  # as `serve` does

        def post(client) -> Callable[[], object]:
            return lambda: client.post(PATH, data=body, content_type="application/json")

        def engine_only() -> float:
            bodies = iter([_parse(body) for _ in range(calls)])  # parsed before the clocks start, as the view does
            return median_ms(lambda: real_call(SERVICE_ID, next(bodies), base_url="http://localhost"), calls)

        variants: dict[str, Callable[[], float]] = {
            "baseline": baseline.measure,
            "service": lambda: median_ms(post(service_client), calls),
            "service, engine free": lambda: median_ms(post(service_client), calls),
            "engine": engine_only,
        }
        medians: dict[str, list[float]] = {name: [] for name in variants}
        for i in range(rounds):
            print(f"round {i + 1}/{rounds}", file=sys.__stderr__, flush=True)
            for name, measure in variants.items():
                service.call = (lambda *a, **k: answer) if name == "service, engine free" else real_call
                medians[name].append(measure())
        service.call = real_call
        baseline.close()
    finally:
        sys.stderr.close()
        sys.stderr = sys.__stderr__
    figures = {name: round(statistics.median(values), 3) for name, values in medians.items()}
    budget = 2 * figures["baseline"] - figures["service, engine free"]
    engine_in_service = figures["service"] - figures["service, engine free"]
    return {
        "machine": machine(),
        "rounds": rounds,
        "calls_per_round": calls,
        "median_ms": figures,
        "ratio_service_to_baseline": round(figures["service"] / figures["baseline"], 2),
        "ratio_engine_free_to_baseline": round(figures["service, engine free"] / figures["baseline"], 2),
        "engine_budget_for_2x_ms": round(budget, 3),
        "engine_over_budget": round(figures["engine"] / budget, 2) if budget > 0 else None,
        "engine_in_service_ms": round(engine_in_service, 3),
        "engine_in_service_over_budget": round(engine_in_service / budget, 2) if budget > 0 else None,
    }


def _parse(raw: bytes) -> object:
    """As the HTTP view parses a body (the typed decode where the tree has it, else fastjson)."""
    try:
        from cds_service.record.fhir_types import decode_body
    except ImportError:
        return fastjson.loads(raw)
    return decode_body(raw) or fastjson.loads(raw)


class _BaselineProcess:
    """The baseline app in a child process, which times a block of `calls` posts when asked."""

    def __init__(self, calls: int) -> None:
        self.child = subprocess.Popen(
            [sys.executable, __file__, "--baseline-child", "--calls", str(calls)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def measure(self) -> float:
        assert self.child.stdin is not None and self.child.stdout is not None
        self.child.stdin.write("measure\n")
        self.child.stdin.flush()
        return float(self.child.stdout.readline())

    def close(self) -> None:
        assert self.child.stdin is not None
        self.child.stdin.close()
        self.child.wait(timeout=30)


def baseline_child(calls: int) -> None:
    """The child: the baseline app alone in its process, the body parsed as it is by the service."""
    import baseline_app

    client = baseline_app.app.test_client()
    body = json.dumps(request(200, 20)).encode()
    gc.collect()
    gc.freeze()
    for _ in sys.stdin:
        ms = median_ms(lambda: client.post(PATH, data=body, content_type="application/json"), calls)
        print(ms, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=300, help="calls per variant and round")
    parser.add_argument("--output", type=Path, default=Path(__file__).resolve().parent / "results" / "budget.json")
    parser.add_argument("--baseline-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_child:
        baseline_child(args.calls)
        return
    result = run(args.rounds, args.calls)
    rows = [{"variant": name, "median_ms": ms} for name, ms in result["median_ms"].items()]
    print_table(rows, ["variant", "median_ms"])
    print(
        f"service / baseline x{result['ratio_service_to_baseline']}; with the engine free "
        f"x{result['ratio_engine_free_to_baseline']}. Engine budget for 2x: {result['engine_budget_for_2x_ms']} ms; "
        f"the engine takes {result['median_ms']['engine']} ms alone (x{result['engine_over_budget']} its budget) "
        f"and {result['engine_in_service_ms']} ms in the service, service minus engine free "
        f"(x{result['engine_in_service_over_budget']})"
    )
    write_result(args.output, result)


if __name__ == "__main__":
    main()
