"""`cds-service serve | evaluate | migrate | report`: the service under gunicorn, the rules offline on
a bundle, the store's schema, and per-rule numbers from the store."""

from __future__ import annotations

import argparse
import gc
import json
import os
import runpy
import shutil
import sys
import tempfile
import types
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .protocol.services import HOOKS, ORDER_SIGN

if TYPE_CHECKING:
    from flask import Flask

    from .cards.model import IssuedCard
    from .config import Settings

ServerHook = Callable[..., None]  # a gunicorn server hook: (server) or (server, worker)

# gunicorn defaults of `serve`, chosen by bench/http_bench.py on 2 cores (bench/README.md)
DEFAULT_WORKERS = 2
DEFAULT_THREADS = 4


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cds-service", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the CDS Hooks service under gunicorn")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_port, default=8080)
    serve.add_argument(
        "--metrics-port",
        type=_port,
        help="port of GET /metrics, apart from the EHR's port (default: metrics.port in the config, 9464; 0: off)",
    )
    serve.add_argument("--workers", type=int, default=DEFAULT_WORKERS)
    serve.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    serve.add_argument("--config", help="YAML config file (default: $CDS_SERVICE_CONFIG or built-in defaults)")
    serve.add_argument("--now", type=_iso, help="fixed clock for historical synthetic data (ISO datetime)")
    serve.add_argument(
        "--gunicorn-config",
        type=Path,
        help="gunicorn settings file (workers, timeouts, ...; see deploy/gunicorn.conf.py); the address stays "
        "--host/--port",
    )
    evaluate = commands.add_parser("evaluate", help="run the rules on a FHIR bundle offline and print the cards")
    evaluate.add_argument("bundle", type=Path)
    evaluate.add_argument("--hook", choices=tuple(HOOKS), default=ORDER_SIGN.name)
    evaluate.add_argument(
        "--order",
        action="append",
        default=[],
        metavar="ID",
        help="id (or fullUrl) of a draft order; repeat for several (default: status=draft orders)",
    )
    evaluate.add_argument("--json", action="store_true", help="print the CDS Hooks response JSON")
    evaluate.add_argument(
        "--explain",
        action="store_true",
        help="after each card, how the service read the orders and which record entries it used",
    )
    evaluate.add_argument("--config")
    evaluate.add_argument("--now", type=_iso, help="fixed clock (ISO datetime); lookbacks are relative to it")
    migrate = commands.add_parser("migrate", help="create or upgrade the store's schema (also done by serve)")
    migrate.add_argument("--config")
    report = commands.add_parser("report", help="per rule: cards issued, accepted, overridden, override rate")
    report.add_argument("--since", type=_iso, help="only cards issued and feedback received from then on")
    report.add_argument("--json", action="store_true", help="print JSON instead of a table")
    report.add_argument("--config")
    simulate = commands.add_parser(
        "simulate", help="replay a site's history (Bulk Data NDJSON or FHIR bundles) and report the alert burden"
    )
    simulate.add_argument(
        "source", type=Path, help="a folder of Bulk Data NDJSON (.ndjson, .ndjson.gz) or FHIR bundles, or a partition"
    )
    simulate.add_argument("--config", help="the site's config (rules switched off, silent, thresholds, gating)")
    simulate.add_argument("--compare", help="a second config: its figures side by side with the first")
    simulate.add_argument("--since", type=_iso, help="replay orders from then on")
    simulate.add_argument("--until", type=_iso, help="replay orders before then")
    simulate.add_argument("--out", type=Path, default=Path("simulation"), help="where the report goes")
    simulate.add_argument("--shard", type=_shard, help="I/N: only this shard of a partition (0-based)")
    simulate.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: every core)")
    split = commands.add_parser(
        "simulate-partition", help="(also `simulate partition`) split an export by patient into N shards, once"
    )
    split.add_argument("source", type=Path, help="a folder of Bulk Data NDJSON (.ndjson, .ndjson.gz) or FHIR bundles")
    split.add_argument("--shards", type=int, required=True, help="how many shards (one per replay job)")
    split.add_argument("--out", type=Path, required=True, help="where the shards and manifest.json go")
    split.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: every core)")
    split.add_argument("--config")
    merge = commands.add_parser("simulate-merge", help="combine the figures of simulate shards, exactly")
    merge.add_argument("shards", type=Path, nargs="+", help="the --out folders of the shards")
    merge.add_argument("--out", type=Path, required=True)
    merge.add_argument("--config")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["simulate", "partition"]:  # `simulate partition` reads as the step it is
        argv[:2] = ["simulate-partition"]
    args = parser.parse_args(argv)
    if args.command == "serve":
        _multiprocess_metrics_dir()  # before anything imports prometheus_client (the config does)
    from .config import ConfigError, load_settings

    try:
        settings = load_settings(args.config, now=getattr(args, "now", None))
    except ConfigError as exc:
        print(f"cds-service: {exc}", file=sys.stderr)
        return 2
    run: dict[str, Callable[[argparse.Namespace, Settings], int]] = {
        "serve": _serve,
        "evaluate": _evaluate,
        "migrate": _migrate,
        "report": _report,
        "simulate": _simulate,
        "simulate-partition": _simulate_partition,
        "simulate-merge": _simulate_merge,
    }
    return run[args.command](args, settings)


def _iso(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date/datetime: {text!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _port(text: str) -> int:
    """A TCP port (0 only where it means "off": --metrics-port)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is out of range (1-65535)")
    return port


def _shard(text: str) -> tuple[int, int]:
    try:
        number, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard must be I/N, such as 0/4, got {text!r}") from None
    if not (count >= 1 and 0 <= number < count):
        raise argparse.ArgumentTypeError(f"--shard {text}: I must be from 0 to N-1") from None
    return number, count


def _unusable(source: Path, count: int, option: str) -> bool:
    """Says why (on stderr) when the export is no folder or the count is below 1."""
    if not source.is_dir():
        print(f"cds-service: {source}: not a folder (of Bulk Data NDJSON or of bundles)", file=sys.stderr)
        return True
    if count < 1:
        print(f"cds-service: {option} must be 1 or more", file=sys.stderr)
        return True
    return False


def _simulate(args: argparse.Namespace, settings: Settings) -> int:
    from .config import ConfigError, load_settings
    from .simulate.report import write_report
    from .simulate.runner import simulate

    if _unusable(args.source, args.workers, "--workers"):
        return 2
    configs = {"site config": settings}
    if args.compare:
        try:
            configs[f"compared: {Path(args.compare).name}"] = load_settings(args.compare)
        except ConfigError as exc:
            print(f"cds-service: --compare: {exc}", file=sys.stderr)
            return 2
    try:
        figures, read = simulate(
            args.source, args.out, configs, args.since, args.until, args.shard, args.workers, sys.stderr
        )
    except (FileNotFoundError, ValueError) as exc:
        print(f"cds-service: {exc}", file=sys.stderr)
        return 2
    about = {
        "source": str(args.source),
        "since": args.since.isoformat() if args.since else "the start of the export",
        "until": args.until.isoformat() if args.until else "the end of the export",
        "shard": f"{read['shard']}/{read['shards']}",
        "configurations": ", ".join(configs),
    }
    write_report(args.out, figures, about, read)
    main = next(iter(figures.values()))
    print(f"{main.orders_replayed:,} orders replayed, {main.cards:,} cards: report in {args.out}/report.html")
    return 0


def _simulate_partition(args: argparse.Namespace, settings: Settings) -> int:
    from .simulate.partition import partition

    if _unusable(args.source, args.shards, "--shards") or _unusable(args.source, args.workers, "--workers"):
        return 2
    try:
        manifest = partition(args.source, args.out, args.shards, settings.knowledge(), args.workers)
    except (FileNotFoundError, ValueError) as exc:
        print(f"cds-service: {exc}", file=sys.stderr)
        return 2
    print(
        f"{manifest['resources_read']:,} resources read, {manifest['resources_kept']:,} kept in "
        f"{args.shards} shard(s): {args.out}/manifest.json"
    )
    return 0


def _simulate_merge(args: argparse.Namespace, settings: Settings) -> int:
    from .simulate.figures import Figures
    from .simulate.report import merged_input, write_report

    merged: dict[str, Figures] = {}
    inputs = []
    for folder in args.shards:
        try:
            raw = json.loads((folder / "figures.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            print(f"cds-service: {folder}/figures.json: {exc}", file=sys.stderr)
            return 2
        try:
            parts = {raw["configuration"]: raw, **(raw.get("compare") or {})}
            for label, figures in parts.items():
                merged.setdefault(label, Figures()).merge(Figures.from_dict(figures))
            inputs.append(raw["input"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            print(
                f"cds-service: {folder}/figures.json: not the figures of this version's simulate ({exc})",
                file=sys.stderr,
            )
            return 2
    try:
        read = merged_input(inputs)
    except ValueError as exc:
        print(f"cds-service: {exc}", file=sys.stderr)
        return 2
    about = {"merged shards": f"{len(inputs)} of {read['shards']}", "configurations": ", ".join(merged)}
    write_report(args.out, merged, about, read)
    main = next(iter(merged.values()))
    print(f"{len(inputs)} shard(s): {main.orders_replayed:,} orders replayed, {main.cards:,} cards: {args.out}")
    return 0


# gunicorn's advice: heartbeat files on a memory file system; a disk one costs a slow utime() per
# request (measured here: ~0.2 ms each, twice a call).
HEARTBEAT_DIR = "/dev/shm"


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    read = _gunicorn_file(args.gunicorn_config) if args.gunicorn_config else {}
    if isinstance(read, str):
        print(f"cds-service: {read}", file=sys.stderr)
        return 2
    file_settings = read
    from gunicorn.app.base import BaseApplication
    from sqlalchemy.exc import SQLAlchemyError

    from . import logs, metrics, tracing
    from .app import create_app
    from .feedback import StoreUnavailable

    logs.configure(settings.log_level)

    class Server(BaseApplication):  # type: ignore[misc, unused-ignore]  # gunicorn ships no types (--strict)
        def load_config(self) -> None:
            defaults = {"workers": args.workers, "threads": args.threads, "worker_class": "gthread"}
            if Path(HEARTBEAT_DIR).is_dir():  # a worker's heartbeat touches a file on every loop: not on disk
                defaults["worker_tmp_dir"] = HEARTBEAT_DIR
            if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 25.1: one shared path in $HOME,
                defaults["control_socket_disable"] = True  # and a runtime admin door nobody here needs
            for key, value in {**defaults, "timeout": 30, "graceful_timeout": 20, **file_settings}.items():
                self.cfg.set(key, value)
            self.cfg.set("bind", f"{args.host}:{args.port}")
            self.cfg.set("logconfig_dict", logs.logging_config(settings.log_level))
            self.cfg.set("child_exit", _chain(file_settings.get("child_exit"), _child_exit))
            self.cfg.set("worker_exit", _chain(file_settings.get("worker_exit"), _worker_exit))
            self.cfg.set("when_ready", _chain(file_settings.get("when_ready"), _when_ready))

        def load(self) -> Flask:
            return app  # built once, before the fork: the workers share it (and its frozen objects)

    metrics_port = settings.metrics.port if args.metrics_port is None else args.metrics_port

    def _when_ready(server: Any) -> None:
        """The master serves /metrics (every worker's values) on its own port. A port taken since the
        check below costs the metrics, never the hooks."""
        if metrics_port:
            try:
                metrics.serve_on_own_port(settings.metrics.host, metrics_port)
            except OSError as exc:
                print(f"cds-service: WARNING: no /metrics: {_metrics_port_taken(metrics_port, exc)}", file=sys.stderr)

    def _child_exit(server: Any, worker: Any) -> None:
        metrics.worker_exited(worker.pid)

    def _worker_exit(server: Any, worker: Any) -> None:
        """Graceful stop (SIGTERM): write the cards this worker issued before it goes."""
        recorder = getattr(worker, "wsgi", None) and worker.wsgi.extensions.get("card_recorder")
        if recorder:
            recorder.close(timeout=5)

    if not settings.security.trusted_issuers:
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            print(
                f"cds-service: refusing to serve on {args.host} without trusted issuers: configure "
                "security.trusted_issuers (see README, Security), or bind to 127.0.0.1",
                file=sys.stderr,
            )
            return 2
        print(
            "cds-service: WARNING: no trusted issuers configured: accepting UNSIGNED calls from this machine "
            "only (loopback). A reverse proxy or TLS terminator in front makes every caller loopback, so calls "
            "with proxy headers (Forwarded, X-Forwarded-For, X-Real-IP) are refused: behind a proxy, configure "
            "security.trusted_issuers. Configure them before connecting an EHR.",
            file=sys.stderr,
        )
    else:
        print(
            f"cds-service: JWT replay cache shared through the {settings.store.url.split(':')[0]} store "
            "(all workers, and across restarts)",
            file=sys.stderr,
        )
    problem = port_problem(args.host, args.port) if args.port else "0 is no port to serve on"
    if problem:
        where = f"{args.host}:{args.port}"
        print(f"cds-service: cannot listen on {where} ({problem}); choose another with --port", file=sys.stderr)
        return 2
    problem = port_problem(settings.metrics.host, metrics_port) if metrics_port else None
    if problem and (args.metrics_port is not None or settings.metrics.port_configured):
        print(
            f"cds-service: cannot listen on {settings.metrics.host}:{metrics_port} ({problem}); choose another with "
            "--metrics-port or metrics.port in the config (0: no metrics)",
            file=sys.stderr,
        )
        return 2
    if problem:  # the default port, chosen by nobody: the hooks matter more than their metrics
        print(f"cds-service: WARNING: no /metrics: {_metrics_port_taken(metrics_port, problem)}", file=sys.stderr)
        metrics_port = 0
    if metrics_port and metrics_port == args.port:
        print("cds-service: --metrics-port must differ from --port", file=sys.stderr)
        return 2
    threads = int(file_settings.get("threads", args.threads))
    try:
        traced = tracing.configure()  # off unless OTEL_* variables ask; before the fork (README, Traces)
    except tracing.TracingConfigError as exc:
        print(f"cds-service: {exc}", file=sys.stderr)
        return 2
    # Built before forking workers; migrates the store. A store that cannot be reached does not stop
    # the start: hooks need no store (README, Operations), and it catches up when it answers. A store
    # setting that cannot work (a malformed URL, a folder that cannot be made) stops it in one line.
    try:
        app = create_app(settings, threads)
    except (StoreUnavailable, SQLAlchemyError, OSError, UnicodeError) as exc:
        print(f"cds-service: {store_problem(settings, exc)}", file=sys.stderr)
        return 2
    store = app.extensions["feedback_store"]
    try:
        store.ping()
    except StoreUnavailable as exc:
        print(
            f"cds-service: WARNING: the store at {_redacted(settings.store.url)} (database_url) is "
            f"unavailable ({exc}): serving hooks; feedback answers 503 until it answers",
            file=sys.stderr,
        )
    app.extensions["feedback_store"].engine.dispose()  # no pooled connection may cross the fork
    # The app, its knowledge and every module are built now and live as long as the process: keep
    # them out of the collector's sweeps (and so their pages shared with the workers after fork).
    gc.collect()
    gc.freeze()
    server = Server()
    if store.dialect == "postgresql":
        per_worker = store.engine.pool.size()
        print(
            f"cds-service: at most {server.cfg.workers * per_worker} PostgreSQL connections from this pod "
            f"({server.cfg.workers} workers x {per_worker}: {threads} threads + the card recorder"
            + (" + card memory's purger" if settings.memory.enabled else "")
            + "; README, Operations: the connection budget)",
            file=sys.stderr,
        )
    print(
        f"cds-service: serving on http://{args.host}:{args.port}/cds-services "
        f"(store {settings.store.url.split('://')[0]}, {server.cfg.workers} workers"
        + (f"; metrics on http://{settings.metrics.host}:{metrics_port}/metrics" if metrics_port else "; no metrics")
        + ("; traces to OpenTelemetry)" if traced else ")"),
        file=sys.stderr,
    )
    server.run()
    return 0


def _metrics_port_taken(port: int, problem: object) -> str:
    return f"port {port} is taken ({problem}); choose another with --metrics-port or metrics.port in the config"


def port_problem(host: str, port: int) -> str | None:
    """Why the address cannot be listened on (in use, not allowed), or None when it can."""
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    family, _type, _proto, _name, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn does: TIME_WAIT is no conflict
        try:
            sock.bind(address)
        except OSError as exc:
            return "address already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or type(exc).__name__)
    return None


def _multiprocess_metrics_dir() -> None:
    """Every gunicorn worker writes its metrics here; a directory left by an earlier run is emptied."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        Path(path).mkdir(parents=True, exist_ok=True)
        for stale in Path(path).glob("*.db"):
            stale.unlink()
        return
    path = tempfile.mkdtemp(prefix="cds-service-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    import atexit

    atexit.register(shutil.rmtree, path, ignore_errors=True)


def _gunicorn_file(path: Path) -> dict[str, Any] | str:
    """Settings from a gunicorn config file; an error message (str) if it cannot be used."""
    from gunicorn.config import Config

    try:
        namespace = runpy.run_path(str(path))
    except Exception as exc:  # a config file is code: report any failure, with its type
        return f"gunicorn config {path}: cannot load ({type(exc).__name__}: {exc})"
    known = Config().settings
    chosen = {k: v for k, v in namespace.items() if k in known}
    if "bind" in chosen:
        return f"gunicorn config {path}: set the address with --host/--port, not bind"
    unknown = [
        k
        for k, v in namespace.items()
        if not k.startswith("_") and k not in known and not isinstance(v, type | types.ModuleType | types.FunctionType)
    ]
    if unknown:
        return f"gunicorn config {path}: unknown setting '{unknown[0]}'"
    return chosen


def _chain(first: ServerHook | None, second: ServerHook) -> ServerHook:
    if first is None:
        return second

    def both(server: Any, worker: Any) -> None:  # gunicorn checks a hook's arity: (server, worker), not *args
        first(server, worker)
        second(server, worker)

    return both


def store_problem(settings: Settings, exc: BaseException) -> str:
    """One line for a store that cannot be reached or set up at start: what failed (the driver's first
    line, never the password) and which setting to change."""
    cause = getattr(exc, "orig", None) or exc.__cause__ or exc
    first = (str(cause).strip().splitlines() or [""])[0][:200]
    what = f"{type(cause).__name__}: {first}" if first else type(cause).__name__
    url = settings.store.url
    key = "data_dir (CDS_SERVICE_DATA_DIR)" if url.startswith("sqlite") else "database_url (CDS_SERVICE_DATABASE_URL)"
    return f"the store at {_redacted(url)} is unavailable ({what}); check that it is up and reachable, or change {key}"


def _redacted(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    from .feedback import FeedbackStore
    from .feedback.migrate import upgrade

    store = FeedbackStore(settings.store.url)
    try:
        before, after = upgrade(store.engine)
    except Exception as exc:  # driver errors vary by database; say which, without the URL's password
        print(
            f"cds-service: cannot migrate the store at {_redacted(settings.store.url)}: {type(exc).__name__}",
            file=sys.stderr,
        )
        return 2
    print(f"store {store.dialect}: schema {before or 'empty'} -> {after}")
    return 0


def _report(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from .feedback import FeedbackStore, StoreUnavailable
    from .feedback.report import per_rule, render_text, total

    store = FeedbackStore(settings.store.url)
    try:
        store.ping()
        rows = per_rule(store, args.since)
    except (StoreUnavailable, SQLAlchemyError) as exc:
        print(
            f"cds-service: the store at {_redacted(settings.store.url)} is unavailable ({exc}); "
            "run `cds-service migrate` if it was never set up",
            file=sys.stderr,
        )
        return 2
    if args.json:
        body = {
            "store": store.dialect,
            "since": args.since.isoformat() if args.since else None,
            "rules": [r.as_dict() for r in rows],
            "total": total(rows).as_dict(),
        }
        print(json.dumps(body, indent=2))
    else:
        print(render_text(rows, args.since, store.dialect))
    return 0


def _evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from .fhir.bundle import BundleError, request_from_bundle
    from .protocol.errors import ProtocolError
    from .service import CdsService

    try:
        bundle = json.loads(args.bundle.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"cds-service: cannot read {args.bundle}: {exc}", file=sys.stderr)
        return 2
    service = CdsService(settings)
    try:
        body = request_from_bundle(bundle, args.hook, args.order, service.registry.prefetch)
        answer = service.call(service.listed_id(args.hook), body)
    except BundleError as exc:
        print(f"cds-service: {args.bundle}: {exc}", file=sys.stderr)
        return 2
    except ProtocolError as exc:
        print(f"cds-service: {args.bundle}: {exc.field or 'request'}: {exc.message}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(answer.response, indent=2))
    else:
        print(render_cards(answer.issued, explain=args.explain))
    return 0


def render_cards(issued: Sequence[IssuedCard], explain: bool = False) -> str:
    """The cards as a clinician reads them in a terminal (and, with `explain`, how they were reached)."""
    from .cards.explain import EXTENSION as EXPLANATION_EXTENSION

    if not issued:
        return "No cards."
    lines = []
    for each in issued:
        card = each.card
        lines.append(f"[{card.indicator.value.upper()}] {each.rule_id}: {card.summary}")
        for line in card.detail.splitlines():
            lines.append(f"    {line}" if line else "")
        for suggestion in card.suggestions:
            lines.append(f"    -> suggestion: {suggestion.label}")
        explained = (card.extension or {}).get(EXPLANATION_EXTENSION)
        if explain and explained:
            lines.append(f"    explanation ({', '.join(explained['orders'])}):")
            lines.extend(f"      - {line}" for line in explained["evidence"])
            lines.extend(f"      - data gap: {g['topic']} ({g['reason']})" for g in explained.get("data_gaps", ()))
        lines.append("")
    return "\n".join(lines).rstrip()


if __name__ == "__main__":
    sys.exit(main())
