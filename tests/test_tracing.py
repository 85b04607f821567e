"""OpenTelemetry traces (cds_service/tracing.py), through the SDK's in-memory exporter: off by default,
switched on by the standard OTEL_* variables, one span per hook call with children for prefetch
resolution, each FHIR request, the engine and the store, and nothing from the record or the URL's
query in any of them."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cds_service import tracing

from .conftest import SCENARIOS, SERVICE_FOR, load_json
from .servers import JsonHandler, serving

SCENARIO = "renal-contraindicated-cg"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use(provider)
    try:
        yield exporter
    finally:
        tracing.use(None)


class EmptyFhir(JsonHandler):
    """Answers every search with an empty searchset: the trace, not the cards, is under test."""

    def do_GET(self):
        self.send_json(200, {"resourceType": "Bundle", "type": "searchset", "entry": []})


@pytest.fixture
def fhir_base() -> Iterator[str]:
    with serving(EmptyFhir) as base:
        yield f"{base}/fhir"


@pytest.mark.parametrize(
    "environ",
    [{}, {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},
     {"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}],
    ids=["nothing-set", "exporter-none", "sdk-disabled"],
)  # fmt: skip
def test_traces_are_off_unless_the_environment_asks(environ):
    assert tracing.provider_from_env(environ) is None


def test_an_otlp_endpoint_or_exporter_switches_them_on_and_a_wrong_value_is_named():
    on = tracing.provider_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert on is not None and on.resource.attributes["service.name"] == "mg-cds"
    named = tracing.provider_from_env({"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "cds-east"})
    assert named is not None and named.resource.attributes["service.name"] == "cds-east"
    for environ, variable in (
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_PROTOCOL"),
    ):
        with pytest.raises(tracing.TracingConfigError, match=variable):
            tracing.provider_from_env(environ)
    for provider in (on, named):
        provider.shutdown()


def test_a_hook_call_is_one_trace_with_prefetch_fhir_engine_and_store_spans(make_app, spans, fhir_base):
    request = load_json(SCENARIOS / SCENARIO / "request.order-sign.json")
    del request["prefetch"]
    request["fhirServer"] = fhir_base
    request["fhirAuthorization"] = {"access_token": "opaque-secret-token", "token_type": "Bearer", "expires_in": 300,
                                    "scope": "patient/*.read", "subject": "mg-cds"}  # fmt: skip
    app = make_app({"fhir": {"servers": [{"base_url": fhir_base, "allow_http": True}]}})
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    response = app.test_client().post(
        f"/cds-services/{SERVICE_FOR['order-sign']}", json=request, headers={"traceparent": traceparent}
    )
    assert response.status_code == 200
    finished = spans.get_finished_spans()
    (hook,) = [s for s in finished if s.name == "cds.hook"]
    assert hook.context.trace_id == int("0af7651916cd43dd8448eb211c80319c", 16), "the caller's trace continues"
    assert hook.attributes["cds.service"] == SERVICE_FOR["order-sign"]
    assert hook.attributes["cds.hook"] == "order-sign"
    assert hook.attributes["http.response.status_code"] == 200
    children = {s.name: s for s in finished if s.parent is not None and s.parent.span_id == hook.context.span_id}
    assert {"cds.prefetch", "cds.engine", "cds.store"} <= set(children), sorted(children)
    queries = [s for s in finished if s.name == "fhir.get"]
    assert queries and all(q.parent.span_id == children["cds.prefetch"].context.span_id for q in queries)
    assert all(q.context.trace_id == hook.context.trace_id for q in queries)
    for query in queries:
        assert query.attributes["server.address"] == "127.0.0.1"
        assert query.attributes["http.response.status_code"] == 200
        assert query.attributes["http.response.body.size"] > 0
        assert query.attributes["fhir.resource_type"] in ("Patient", "MedicationRequest", "Observation",
                                                          "Condition", "MedicationStatement", "Encounter")  # fmt: skip
    # Nothing that identifies the patient, nothing of a URL's path or query, no token.
    patient_id = request["context"]["patientId"]
    text = json.dumps([dict(s.attributes) for s in finished] + [s.name for s in finished], default=str)
    for secret in (patient_id, "opaque-secret-token", "?", "patient=", fhir_base):
        assert secret not in text, secret


def test_off_the_hook_call_makes_no_spans(make_app, spans):
    tracing.use(None)  # as in service with no OTEL_* variables: the API's no-op provider
    response = (
        make_app()
        .test_client()
        .post(
            f"/cds-services/{SERVICE_FOR['order-sign']}",
            json=load_json(SCENARIOS / SCENARIO / "request.order-sign.json"),
        )
    )
    assert response.status_code == 200
    assert spans.get_finished_spans() == ()


def test_a_provider_set_globally_after_the_start_gets_the_spans(make_app, monkeypatch):
    """With no provider of ours, traces follow one set later through the API (as an agent's
    `opentelemetry-instrument` would): the hooks ask each call, nothing is decided once at the start."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "_tracer", None)
    monkeypatch.setattr(tracing, "_api_tracer", None, raising=False)
    client = make_app().test_client()
    request = load_json(SCENARIOS / SCENARIO / "request.order-sign.json")
    assert client.post(f"/cds-services/{SERVICE_FOR['order-sign']}", json=request).status_code == 200
    assert not tracing.on()
    # What trace.set_tracer_provider does, undone after the test (the API sets it once per process).
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)
    assert client.post(f"/cds-services/{SERVICE_FOR['order-sign']}", json=request).status_code == 200
    names = [s.name for s in exporter.get_finished_spans()]
    assert names.count("cds.hook") == 1 and {"cds.prefetch", "cds.engine", "cds.store"} <= set(names), names
