"""Two trees of the service served side by side: is a change faster, served, on this drifting machine?

    git worktree add --detach /work/wt/base <commit>; ln -s ../hooks /work/wt/base/cds_service/hooks
    python bench/trees.py /work/wt/base . [--case typical|first-sight] [--concurrency 1] [--rounds 6]

Each tree runs under gunicorn as bench/http_bench.py runs the service (same workers, threads, log
level and metrics; its own data folder), put first on the path (`PYTHONPATH=<tree>`; a tree needs the
`cds_service/hooks -> ../hooks` link, the package-dir mapping being the editable install's). The
rounds alternate which tree goes first, so a slow minute falls on both. Prints each tree's pooled
requests, p50, p99 and the servers' CPU per request (from /proc), each round's p50, and the second
tree over the first. A change smaller than the rounds' spread is not shown by this; count its
instructions (bench/instructions.py) instead. Nothing is written to bench/results.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
from pathlib import Path

from common import pooled_figures, pooled_run, print_table, process_tree
from http_bench import PATH, start
from loadgen import drive
from workload import first_sight, request

import cds_service
from cds_service.cli import DEFAULT_THREADS


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("trees", nargs=2, type=Path, help="two source trees (the repository's root folders)")
    parser.add_argument("--case", choices=("typical", "first-sight"), default="typical")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=3.0, help="per tree and round")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    args = parser.parse_args()
    trees = [tree.resolve() for tree in args.trees]
    if trees[0] == trees[1]:
        parser.error("two different trees (for an A/A run, a second worktree of the same commit)")
    installed = Path(cds_service.__file__).resolve().parent.parent  # its editable install maps the hooks
    for tree in trees:
        if tree != installed and not (tree / "cds_service" / "hooks").exists():
            parser.error(f"{tree}: no cds_service/hooks (link it: ln -s ../hooks {tree}/cds_service/hooks)")
    body = json.dumps(request(200, 20, marked=args.case == "first-sight")).encode()
    fresh = first_sight if args.case == "first-sight" else None
    pooled: dict[tuple, dict] = {}
    rounds: dict[Path, list[float]] = {tree: [] for tree in trees}
    with tempfile.TemporaryDirectory() as data:
        servers = {}
        try:
            for number, tree in enumerate(trees):
                os.environ["PYTHONPATH"] = str(tree)
                (Path(data) / str(number)).mkdir()
                servers[tree] = start("service", args.workers, args.threads, Path(data) / str(number))
            for _, port in servers.values():
                drive(port, PATH, body, args.concurrency, 1.0, fresh)  # warm-up
            for r in range(args.rounds):
                for tree in trees if r % 2 == 0 else trees[::-1]:
                    proc, port = servers[tree]
                    slot = pooled.setdefault((tree,), {"lat": [], "wall": 0.0, "err": 0, "cpu": 0.0})
                    before = len(slot["lat"])
                    pooled_run(
                        pooled, (tree,), process_tree(proc.pid), port, PATH, body, args.concurrency, args.seconds, fresh
                    )
                    rounds[tree].append(statistics.median(slot["lat"][before:]))
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(timeout=20)
    rows = [
        {"tree": str(tree), **pooled_figures(pooled[(tree,)]), "round_p50s": " ".join(f"{x:.2f}" for x in rounds[tree])}
        for tree in trees
    ]
    print(
        f"{args.case}, concurrency {args.concurrency}, {args.rounds} rounds of {args.seconds:g} s a tree, alternating"
    )
    print_table(rows, ["tree", "requests", "errors", "p50_ms", "p99_ms", "server_cpu_ms", "round_p50s"])
    first, second = rows
    print(
        f"second / first: p50 x{second['p50_ms'] / first['p50_ms']:.3f}, "
        f"server CPU per request x{second['server_cpu_ms'] / first['server_cpu_ms']:.3f}"
    )


if __name__ == "__main__":
    random.seed(1)
    main()
