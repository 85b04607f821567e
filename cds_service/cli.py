"""`cds-service serve | evaluate`: the service under gunicorn, or the rules offline on a bundle."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .config import ConfigError, load_settings

SERVICE_ID = "magnesium-order-check"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cds-service", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the CDS Hooks service under gunicorn")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--workers", type=int, default=2)
    serve.add_argument("--threads", type=int, default=4)
    serve.add_argument("--config", help="YAML config file (default: $CDS_SERVICE_CONFIG or built-in defaults)")
    serve.add_argument("--now", type=_iso, help="fixed clock for historical synthetic data (ISO datetime)")
    evaluate = commands.add_parser("evaluate", help="run the rules on a FHIR bundle offline and print the cards")
    evaluate.add_argument("bundle", type=Path)
    evaluate.add_argument("--hook", choices=("order-select", "order-sign"), default="order-sign")
    evaluate.add_argument(
        "--order",
        action="append",
        default=[],
        metavar="ID",
        help="id (or fullUrl) of a draft order; repeat for several (default: status=draft orders)",
    )
    evaluate.add_argument("--json", action="store_true", help="print the CDS Hooks response JSON")
    evaluate.add_argument("--config")
    evaluate.add_argument("--now", type=_iso, help="fixed clock (ISO datetime); lookbacks are relative to it")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config, now=args.now)
    except ConfigError as exc:
        print(f"cds-service: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return _serve(args, settings)
    return _evaluate(args, settings)


def _iso(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date/datetime: {text!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _serve(args: argparse.Namespace, settings) -> int:
    from gunicorn.app.base import BaseApplication

    from .app import create_app

    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    class Server(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{args.host}:{args.port}")
            self.cfg.set("workers", args.workers)
            self.cfg.set("threads", args.threads)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("timeout", 30)
            self.cfg.set("graceful_timeout", 20)

        def load(self):
            return create_app(settings)

    if not settings.trusted_issuers:
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            print(
                f"cds-service: refusing to serve on {args.host} without trusted issuers: configure "
                "security.trusted_issuers (see README, Security), or bind to 127.0.0.1",
                file=sys.stderr,
            )
            return 2
        print(
            "cds-service: WARNING: no trusted issuers configured: accepting UNSIGNED calls from this machine "
            "only (loopback). Configure security.trusted_issuers before connecting an EHR.",
            file=sys.stderr,
        )
    create_app(settings)  # fail here, with a message, before forking workers
    print(
        f"cds-service: serving on http://{args.host}:{args.port}/cds-services "
        f"(store {settings.effective_store_url.split('://')[0]}, {args.workers} workers)",
        file=sys.stderr,
    )
    Server().run()
    return 0


def _evaluate(args: argparse.Namespace, settings) -> int:
    from .fhir.bundle import BundleError, request_from_bundle
    from .fhir.templates import templates_for
    from .protocol.errors import ProtocolError
    from .service import CdsService

    try:
        bundle = json.loads(args.bundle.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"cds-service: cannot read {args.bundle}: {exc}", file=sys.stderr)
        return 2
    service = CdsService(settings)
    try:
        body = request_from_bundle(
            bundle, args.hook, args.order, templates_for(service.discovery, SERVICE_ID, args.hook)
        )
        response, _ = service.call(SERVICE_ID, body)
    except BundleError as exc:
        print(f"cds-service: {args.bundle}: {exc}", file=sys.stderr)
        return 2
    except ProtocolError as exc:
        print(f"cds-service: {args.bundle}: {exc.field or 'request'}: {exc.message}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(response, indent=2))
    else:
        print(render_text(response))
    return 0


def render_text(response: dict[str, Any]) -> str:
    cards = response["cards"]
    if not cards:
        return "No cards."
    lines = []
    for card in cards:
        lines.append(f"[{card['indicator'].upper()}] {card['source']['topic']['code']}: {card['summary']}")
        for line in card.get("detail", "").splitlines():
            lines.append(f"    {line}" if line else "")
        for suggestion in card.get("suggestions", ()):
            lines.append(f"    -> suggestion: {suggestion['label']}")
        lines.append("")
    return "\n".join(lines).rstrip()


if __name__ == "__main__":
    sys.exit(main())
