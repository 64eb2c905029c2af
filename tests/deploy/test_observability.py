"""Observability: what reaches a log line, and traces across gateway -> service -> database."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import structlog
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from shared.logging import configure_logging, mask_uscc, redact
from shared.tracing import tracing_enabled
from tests.platform import Platform

USCC = "91330106MA2HXFY97H"
OTHER_USCC = "91330108MA27XK0A1M"


def test_mask_uscc_keeps_first_six_and_last_two() -> None:
    assert mask_uscc(USCC) == "913301**********7H"
    assert (
        mask_uscc(f"GET /v1/enterprises/{USCC}/score?peer={OTHER_USCC.lower()}")
        == "GET /v1/enterprises/913301**********7H/score?peer=913301**********1m"
    )


def test_mask_uscc_leaves_other_tokens_alone() -> None:
    request_id = "0f3a9c1d2e4b5a6978877665544332211"  # hex, longer than a code
    too_short = USCC[:-1]
    forbidden_letter = "91330106MA2HXFY9IH"  # I is not in the code alphabet
    for text in (request_id, too_short, forbidden_letter, f"x{USCC}", "run 2025 of 5036"):
        assert mask_uscc(text) == text


def test_redact_blanks_secret_keys_anywhere_and_masks_codes() -> None:
    event = {
        "event": f"login for {USCC}",
        "password": "hunter2",
        "client_secret": "s3cr3t",
        "ssotoken": "abc",
        "headers": {"Authorization": "Bearer abc.def", "Cookie": "ip_session=xyz", "accept": "*"},
        "items": [{"uscc": OTHER_USCC, "refresh_token": "rt"}],
        "error": "upstream said: Bearer eyJhbGciOi.eyJzdWIiOi.c2ln refused",
        "count": 3,
    }
    out = redact(None, "info", event)
    assert out["password"] == out["client_secret"] == out["ssotoken"] == "[REDACTED]"
    assert out["headers"] == {
        "Authorization": "[REDACTED]",
        "Cookie": "[REDACTED]",
        "accept": "*",
    }
    assert out["items"] == [{"uscc": "913301**********1M", "refresh_token": "[REDACTED]"}]
    assert out["event"] == "login for 913301**********7H"
    assert "eyJ" not in out["error"]
    assert out["count"] == 3


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """The real configuration, JSON as in production, with stderr captured."""
    buffer = io.StringIO()
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers = list(root.handlers)
    configure_logging(json=True)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=buffer))
    for handler in root.handlers:
        if isinstance(handler, logging.StreamHandler) and handler not in handlers:
            handler.setStream(buffer)
    try:
        yield buffer
    finally:
        structlog.configure(**saved)
        root.handlers = handlers


def test_no_full_code_or_secret_reaches_a_json_line(captured_logs: io.StringIO) -> None:
    structlog.get_logger("t").warning(
        "import rejected", uscc=USCC, detail=f"duplicate {OTHER_USCC}", client_secret="s3cr3t"
    )
    # A standard-library logger (uvicorn's access log, SQLAlchemy) goes the same way.
    logging.getLogger("uvicorn.error").warning("GET /v1/enterprises/%s/score 200", USCC)
    try:
        raise ValueError(f"Key (uscc)=({USCC}) already exists")
    except ValueError:
        structlog.get_logger("t").exception("insert failed")

    text = captured_logs.getvalue()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert len(lines) == 3
    assert USCC not in text and OTHER_USCC not in text and "s3cr3t" not in text
    assert lines[0]["uscc"] == "913301**********7H"
    assert lines[1]["event"] == "GET /v1/enterprises/913301**********7H/score 200"
    assert "913301**********7H" in lines[2]["exception"]


@pytest.mark.parametrize("access_log", [True, False])
def test_uvicorns_access_log_switch_is_kept(access_log: bool) -> None:
    """uvicorn's `--no-access-log` (no handler, no propagation) stays off; an access log
    uvicorn set up goes through the masking handler instead of its own."""
    access = logging.getLogger("uvicorn.access")
    saved = (list(access.handlers), access.propagate)
    root = logging.getLogger()
    handlers = list(root.handlers)
    access.handlers = [logging.StreamHandler(io.StringIO())] if access_log else []
    access.propagate = False
    try:
        configure_logging(json=True)
        assert access.handlers == []
        assert access.propagate is access_log
        assert access.hasHandlers() is access_log  # what uvicorn checks per connection
    finally:
        access.handlers, access.propagate = saved
        root.handlers = handlers


def test_tracing_is_off_unless_an_exporter_is_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert not tracing_enabled()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    assert tracing_enabled()
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert not tracing_enabled()


async def test_no_tracing_by_default_in_a_running_service(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    await platform.start("scoring")
    app = platform.fastapi["scoring"]
    assert getattr(app.state, "tracer_provider", None) is None
    async with platform.client("scoring", "government") as c:
        r = await c.get("/v1/models")
    assert r.status_code == 200
    assert "traceparent" not in r.request.headers


def _by_kind(spans: tuple[ReadableSpan, ...], kind: SpanKind) -> list[ReadableSpan]:
    return [s for s in spans if s.kind == kind]


async def test_a_service_request_gives_a_server_span_and_database_spans(
    platform: Platform,
) -> None:
    exporter = InMemorySpanExporter()
    platform.extra["scoring"] = {"span_exporter": exporter}
    await platform.start("scoring")
    exporter.clear()  # startup work (the default model) is not the request's

    async with platform.client("scoring", "government") as c:
        assert (await c.get("/healthz")).status_code == 200  # excluded: probes every few s
        r = await c.get("/v1/models")
    assert r.status_code == 200

    spans = exporter.get_finished_spans()
    servers = _by_kind(spans, SpanKind.SERVER)
    assert [s.name for s in servers] == ["GET /v1/models"]
    assert [s.name for s in spans if s.kind == SpanKind.INTERNAL] == []  # no send/receive
    server = servers[0]
    assert server.resource.attributes["service.name"] == "scoring"
    db = [s for s in _by_kind(spans, SpanKind.CLIENT) if _attrs(s).get("db.system")]
    assert db, [s.name for s in spans]
    assert server.context is not None
    for span in db:
        assert _attrs(span)["db.system"] == "postgresql"
        assert span.context is not None and span.context.trace_id == server.context.trace_id
    # One span per statement, from SQLAlchemy only: asyncpg's instrumentation would add a
    # second span for each.
    scopes = {s.instrumentation_scope.name for s in db if s.instrumentation_scope}
    assert scopes == {"opentelemetry.instrumentation.sqlalchemy"}


async def test_one_trace_from_the_gateway_through_the_service_to_the_database(
    platform: Platform, tmp_path: Path
) -> None:
    exporter = InMemorySpanExporter()
    platform.extra["gateway"] = {"issuer": platform.issuer, "span_exporter": exporter}
    platform.extra["scoring"] = {"span_exporter": exporter}
    platform.settings_overrides["gateway"] = {
        "key_file": tmp_path / "keys" / "issuer.json",
        "var_dir": tmp_path,
        "esso_project_secret": "test-esso-project-secret-0123456789",
    }
    await platform.start("scoring", "gateway")
    exporter.clear()

    async with platform.client("gateway", "government", scopes=["scoring:read"]) as c:
        r = await c.get("/v1/scoring/models")
    assert r.status_code == 200, r.text

    spans = exporter.get_finished_spans()
    by_service: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        by_service.setdefault(str(span.resource.attributes["service.name"]), []).append(span)
    gateway_server = _by_kind(tuple(by_service["gateway"]), SpanKind.SERVER)
    gateway_calls = [
        s for s in _by_kind(tuple(by_service["gateway"]), SpanKind.CLIENT) if _is_http(s)
    ]
    # In one process the gateway's client span is still the current span when the service
    # app runs, so the service's request span is recorded as INTERNAL rather than SERVER;
    # across a network it arrives through the `traceparent` header as SERVER.
    scoring_server = [s for s in by_service["scoring"] if s.name == "GET /v1/models"]
    scoring_db = [s for s in by_service["scoring"] if _attrs(s).get("db.system")]
    assert len(gateway_server) == len(gateway_calls) == len(scoring_server) == 1
    assert scoring_db
    # Background work (the gateway's revocation poll) has traces of its own: compare the
    # request's spans only.
    request_spans = [*gateway_server, *gateway_calls, *scoring_server, *scoring_db]
    trace_ids = {s.context.trace_id for s in request_spans if s.context is not None}
    assert len(trace_ids) == 1, "gateway, service and database spans share one trace"
    # The service's server span is the child of the gateway's outbound call.
    parent = scoring_server[0].parent
    assert parent is not None
    assert parent.span_id in {s.context.span_id for s in gateway_calls if s.context}


def _attrs(span: ReadableSpan) -> Mapping[str, Any]:
    return span.attributes or {}


def _is_http(span: ReadableSpan) -> bool:
    return "http.request.method" in _attrs(span) or "http.method" in _attrs(span)
