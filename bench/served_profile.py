"""Where a served call's time goes outside the engine: the app built as bench/budget.py builds it
(production log level, the line written to a file), `CdsService.call` answering the response it
gave once, and posts of the typical order-sign body through Flask's test client.

    python bench/served_profile.py profile [--calls 1000] [--top 40]   # cProfile, cumulative
    python bench/served_profile.py gc [--calls 1000]        # the collector's passes and time a post
    python bench/served_profile.py writer [--calls 1000]    # the card writer's backlog after the posts

The seventh pass in bench/README.md was measured with these. Nothing is written to bench/results.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import logging.config
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workload import NOW, request

from cds_service import fastjson
from cds_service.app import create_app
from cds_service.config import Settings, StoreSettings
from cds_service.logs import logging_config

SERVICE_ID = "magnesium-order-sign"


def engine_free_post(data_dir: Path) -> tuple[Callable[[], object], Any]:
    """A post to the real app whose engine answers from memory, and the app."""
    logging.config.dictConfig(logging_config("INFO"))
    app = create_app(Settings(now=NOW, store=StoreSettings(data_dir=data_dir)))
    service = app.extensions["cds_service"]
    body = json.dumps(request(200, 20)).encode()
    answer = service.call(SERVICE_ID, fastjson.loads(body), base_url="http://localhost")
    service.call = lambda *args, **kwargs: answer
    client = app.test_client()
    return lambda: client.post(f"/cds-services/{SERVICE_ID}", data=body, content_type="application/json"), app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("profile", "gc", "writer"))
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="cds-served-"))
    sys.stderr = (data_dir / "service.log").open("w")  # the log line, written as budget.py writes it
    post, app = engine_free_post(data_dir)
    for _ in range(200):  # warm, then frozen as `serve` does
        post()
    gc.collect()
    gc.freeze()
    recorder = app.extensions["card_recorder"]
    recorder.flush()
    out = sys.__stdout__
    if args.what == "profile":
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(args.calls):
            post()
        profile.disable()
        pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(args.top)
    elif args.what == "gc":
        passes, seconds, started = [0, 0, 0], [0.0, 0.0, 0.0], [0.0]

        def watch(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                started[0] = time.perf_counter()
            else:
                passes[info["generation"]] += 1
                seconds[info["generation"]] += time.perf_counter() - started[0]

        gc.callbacks.append(watch)
        for _ in range(args.calls):
            post()
        gc.callbacks.remove(watch)
        for generation in range(3):
            print(
                f"generation {generation}: {passes[generation] / args.calls:.3f} passes a post, "
                f"{seconds[generation] / args.calls * 1e6:.1f} us a post",
                file=out,
            )
    else:
        for _ in range(args.calls):
            post()
        behind = len(recorder._pending) + len(recorder._in_flight)  # the queue, as its writer sees it
        started = time.perf_counter()
        recorder.flush(timeout=60)
        print(
            f"after {args.calls} posts: {behind} card rows not yet written, "
            f"written {time.perf_counter() - started:.2f} s later",
            file=out,
        )
    recorder.close()


if __name__ == "__main__":
    main()
