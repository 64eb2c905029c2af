"""OpenTelemetry tracing across gateway -> service -> database, off unless configured.

Tracing is on only when an exporter is configured: the standard
`OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) in the environment,
or a span exporter handed in through `Overrides.extra["span_exporter"]` (tests).
`OTEL_SDK_DISABLED=true` turns it off again; `OTEL_EXPORTER_OTLP_PROTOCOL` chooses `grpc` or
`http/protobuf` (the default, as the specification recommends); `OTEL_SERVICE_NAME` and
`OTEL_RESOURCE_ATTRIBUTES` are honoured. The exporters read their own endpoint, headers and
timeouts from the same variables.

Each application gets its own `TracerProvider` instead of the process-wide one: tests run
several components in one process, and the global provider can be set only once. For the
same reason the instrumentation is per object (this app, this engine, these clients), never
the instrumentors' process-wide `instrument()`, which patches `create_engine` once and
ignores every later provider.

The database is traced through SQLAlchemy on `engine.sync_engine` only, not through asyncpg
as well: both together give every statement twice (and asyncpg's adds one span per row
fetched).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import httpx
from fastapi import FastAPI
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from sqlalchemy.ext.asyncio import AsyncEngine

# Probes and scrapes every few seconds would drown the traces that matter.
EXCLUDED_URLS = "/healthz,/readyz,/metrics"
SPAN_EXPORTER_KEY = "span_exporter"


def tracing_enabled(environ: Mapping[str, str] = os.environ) -> bool:
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


def otlp_exporter(environ: Mapping[str, str] = os.environ) -> SpanExporter:
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    return HttpExporter()


def create_tracer_provider(
    component: str, exporter: SpanExporter, *, batch: bool = True
) -> TracerProvider:
    resource = Resource.create(
        {
            "service.name": os.environ.get("OTEL_SERVICE_NAME") or component,
            "service.namespace": "innovation-points",
        }
    )
    provider = TracerProvider(resource=resource)
    # Batching keeps export off the request path; a test exporter wants every span at once.
    processor: SpanProcessor = (
        BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    )
    provider.add_span_processor(processor)
    return provider


def instrument_app(app: FastAPI, provider: TracerProvider) -> None:
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        excluded_urls=EXCLUDED_URLS,
        # One span per request; a span per ASGI send/receive message is noise.
        exclude_spans=["receive", "send"],
    )
    # The instrumentor wraps `build_middleware_stack`, but inside the lifespan the stack has
    # already been built (the lifespan itself runs through it): build it again so the next
    # request goes through the tracing middleware.
    if app.middleware_stack is not None:
        app.middleware_stack = app.build_middleware_stack()


def instrument_engine(engine: AsyncEngine, provider: TracerProvider) -> None:
    from opentelemetry import metrics, trace
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from opentelemetry.instrumentation.sqlalchemy.version import __version__

    tracer = trace.get_tracer("opentelemetry.instrumentation.sqlalchemy", __version__, provider)
    # The tracer wants a connections gauge; metrics stay with Prometheus (shared.metrics).
    usage = (
        metrics.NoOpMeterProvider()
        .get_meter("opentelemetry.instrumentation.sqlalchemy")
        .create_up_down_counter("db.client.connections.usage")
    )
    # Registers its listeners on this engine alone (the package ships no type hints).
    EngineTracer(tracer, engine.sync_engine, usage)  # type: ignore[no-untyped-call]


def instrument_clients(clients: list[httpx.AsyncClient], provider: TracerProvider) -> None:
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    seen: set[int] = set()
    for client in clients:
        # Instrumenting wraps the client's transport object; two clients sharing one (tests
        # inject a single transport) would otherwise record every call twice.
        transport = id(getattr(client, "_transport", client))
        if transport in seen:
            continue
        seen.add(transport)
        # Per client, not the process-wide patch: that one only covers httpx's own
        # transports and would miss the gateway's aiohttp transport.
        HTTPXClientInstrumentor.instrument_client(client, tracer_provider=provider)


def configure_tracing(app: FastAPI, component: str) -> TracerProvider | None:
    """Trace this app's requests, its database and its outbound HTTP clients, if configured.

    Call in the lifespan once the engines (`app.state.engine`, `read_engine`) and the
    component's HTTP clients (any `httpx.AsyncClient` on `app.state`) exist. Returns the
    provider, or None when tracing is off (then nothing is instrumented and nothing costs
    anything).
    """
    state: dict[str, Any] = getattr(app.state, "_state", {})
    exporter = state.get(SPAN_EXPORTER_KEY)
    if isinstance(exporter, SpanExporter):
        provider = create_tracer_provider(component, exporter, batch=False)
    elif tracing_enabled():
        provider = create_tracer_provider(component, otlp_exporter())
    else:
        return None
    instrument_app(app, provider)
    for key in ("engine", "read_engine"):  # the read engine serves GET requests' sessions
        engine = state.get(key)
        if isinstance(engine, AsyncEngine):
            instrument_engine(engine, provider)
    instrument_clients([c for c in state.values() if isinstance(c, httpx.AsyncClient)], provider)
    app.state.tracer_provider = provider
    return provider
