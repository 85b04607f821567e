"""OpenTelemetry traces of hook calls, off unless the standard OTEL_* variables ask for them.

On: `OTEL_TRACES_EXPORTER=otlp` (or `console`), or an OTLP endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`,
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) with no exporter named; `OTEL_SDK_DISABLED=true` or
`OTEL_TRACES_EXPORTER=none` keeps them off. The OTLP exporter speaks http/protobuf and reads the rest
of its settings (headers, timeout, certificate) from the environment itself; the sampler comes from
`OTEL_TRACES_SAMPLER`, the resource from `OTEL_SERVICE_NAME` (default mg-cds) and
`OTEL_RESOURCE_ATTRIBUTES`.

One span per hook call (`cds.hook`, a server span continuing the caller's `traceparent`), with
children for prefetch resolution (`cds.prefetch`), each FHIR request (`fhir.get`: the server's host
and port, the resource type, the status and the bytes read; never the URL's path beyond the type,
its query, or anything from the record), the rules (`cds.engine`) and the store (`cds.store`).
Attributes are ids, counts and codes only, as in the logs. Off, every call here is a no-op that
costs next to nothing: no span started, no context attached, no caller's `traceparent` read.
"""

from __future__ import annotations

import contextvars
import os
import re
from collections.abc import Callable, Container, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar
from urllib.parse import urlsplit

from opentelemetry import context, propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

if TYPE_CHECKING:  # the SDK itself is imported only when traces are switched on
    from flask import Flask
    from opentelemetry.sdk.trace import TracerProvider

P = ParamSpec("P")
R = TypeVar("R")
NAME = "cds_service"
DEFAULT_SERVICE_NAME = "mg-cds"
HOOK_VIEW = "service"  # the hook call, as its view declares it (web/hooks.py)
RESOURCE_TYPE = re.compile(r"[A-Z][A-Za-z]{1,63}")

_tracer: trace.Tracer | None = None  # from configure()'s or, in tests, use()'s provider
_api_tracer: trace.Tracer | None = None  # the API's, got once: its proxy follows a provider set later
_NO_SPAN: AbstractContextManager[Span] = nullcontext(trace.INVALID_SPAN)  # what span() gives when off


class TracingConfigError(ValueError):
    """An OTEL_* variable this service cannot follow; the message names it."""


def provider_from_env(environ: Mapping[str, str]) -> TracerProvider | None:
    """The tracer provider the OTEL_* variables ask for, or None when traces are off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    named = [n.strip().lower() for n in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    exporters = named or (["otlp"] if endpoint else [])
    if not exporters or exporters == ["none"]:
        return None
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    if protocol and protocol != "http/protobuf":
        raise TracingConfigError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol}: only http/protobuf is supported")
    name = environ.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME  # OTEL_RESOURCE_ATTRIBUTES: read by the SDK
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    for exporter_name in exporters:
        exporter: SpanExporter
        if exporter_name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
        elif exporter_name == "console":
            exporter = ConsoleSpanExporter()
        else:
            raise TracingConfigError(f"OTEL_TRACES_EXPORTER={exporter_name}: use otlp, console or none")
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def configure(environ: Mapping[str, str] | None = None) -> bool:
    """Switch traces on for this process if the environment asks (once, before gunicorn forks: the
    SDK's span processors start their threads again in each worker). True when they are on."""
    provider = provider_from_env(os.environ if environ is None else environ)
    if provider is None:
        return False
    trace.set_tracer_provider(provider)
    use(provider)
    return True


def use(provider: trace.TracerProvider | None) -> None:
    """The provider this module's spans go to (tests: one with an in-memory exporter; None: off)."""
    global _tracer
    _tracer = provider.get_tracer(NAME) if provider is not None else None


def on() -> bool:
    """Whether a span goes anywhere: a provider of ours (configure(), or use() in tests), or one set
    globally since the start (`trace.set_tracer_provider`, which the API's proxy tracer follows). With
    traces off the API would make non-recording spans, at a cost per hook call: nothing is made."""
    return _tracer is not None or not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def tracer() -> trace.Tracer:
    """This module's tracer: our provider's, else the API's global one got once (asking the API for
    the global provider's tracer on every span cost 5 % of a hook call); its proxy tracer follows
    whatever provider is set later."""
    global _api_tracer
    if _tracer is not None:
        return _tracer
    if _api_tracer is None:
        _api_tracer = trace.get_tracer_provider().get_tracer(NAME)
    return _api_tracer


def span(name: str, **attributes: str | int | float | bool) -> AbstractContextManager[Span]:
    """A child span of the current one (ids, counts and codes only as attributes); off, a
    non-recording span that nothing starts or ends."""
    if not on():
        return _NO_SPAN
    return tracer().start_as_current_span(name, attributes=attributes, record_exception=False)


def fhir_get(url: str) -> AbstractContextManager[Span]:
    """A client span for one GET to a FHIR server: host, port and resource type, never the rest of
    the URL (a path can hold a patient id, a query a patient's data)."""
    return _fhir_get(url) if on() else _NO_SPAN


@contextmanager
def _fhir_get(url: str) -> Iterator[Span]:
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    kind = next((s for s in segments if RESOURCE_TYPE.fullmatch(s)), "")
    attributes: dict[str, str | int] = {"http.request.method": "GET", "server.address": parts.hostname or ""}
    if parts.port or parts.scheme:
        attributes["server.port"] = parts.port or (443 if parts.scheme == "https" else 80)
    if kind:
        attributes["fhir.resource_type"] = kind
    with tracer().start_as_current_span(
        "fhir.get", kind=SpanKind.CLIENT, attributes=attributes, record_exception=False
    ) as current:
        try:
            yield current
        except Exception as exc:  # the reason's class only: a message may quote what the server said
            current.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise


def in_this_context(function: Callable[P, R]) -> Callable[P, R]:
    """`function`, run later on a pool thread, inside the caller's span (threads start with none)."""
    captured = contextvars.copy_context()

    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        return captured.copy().run(function, *args, **kwargs)

    return run


def install(app: Flask, service_ids: Container[str]) -> None:
    """A server span around each hook call, with the fields the request's log line gets."""
    from flask import g, request

    from .access import metric_name

    @app.before_request
    def start() -> None:
        if not on() or request.url_rule is None or metric_name() != HOOK_VIEW:
            return
        wanted = (request.view_args or {}).get("service_id")
        attributes = {
            "http.request.method": request.method,
            "http.route": request.url_rule.rule,
            "cds.service": wanted if wanted in service_ids else "unknown",
        }
        parent = propagate.extract(request.headers)  # the caller's traceparent, if it sent one
        current = tracer().start_span("cds.hook", context=parent, kind=SpanKind.SERVER, attributes=attributes)
        g.trace_span = current
        g.trace_token = context.attach(trace.set_span_in_context(current, parent))

    @app.after_request
    def status(response: Any) -> Any:
        current = g.get("trace_span")
        if current is not None:
            current.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 500:
                current.set_status(Status(StatusCode.ERROR))
        return response

    @app.teardown_request
    def finish(exc: BaseException | None) -> None:
        current = g.pop("trace_span", None)
        if current is None:
            return
        fields = g.get("log_fields") or {}
        for key in ("hook", "cards", "held_back"):
            if isinstance(fields.get(key), str | int):
                current.set_attribute(f"cds.{key}", fields[key])
        if isinstance(fields.get("rules"), list):
            current.set_attribute("cds.rules", [str(r) for r in fields["rules"]])
        if exc is not None:
            current.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        current.end()
        context.detach(g.pop("trace_token"))
