"""The proxy's clients, its own HTTP/1.1 client (the default) and aiohttp's called directly
(no httpx in between), against a real HTTP server on loopback: what reaches the service is
byte for byte what httpx sent before, and failures are classified as they were (the rest of
tests/gateway routes httpx in-process). Every test here runs with both clients."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import httpx
import pytest
from aiohttp import web

from gateway.app import upstream_session
from gateway.proxy.http1 import Http1Pool
from gateway.proxy.upstreams import Http1Sender, Upstreams, upstream_url
from gateway.settings import GatewaySettings
from shared.errors import BadRequest, ServiceUnavailable, UpstreamTimeout

BASE = "http://127.0.0.1:9"


def _httpx_target(target: str) -> str | None:
    try:
        return BASE + httpx.URL(BASE + target).raw_path.decode("ascii")
    except (httpx.InvalidURL, UnicodeError):
        return None


def _ours(path: str, query: bytes) -> str | None:
    try:
        return upstream_url(BASE, path, query)
    except BadRequest:
        return None


@pytest.mark.parametrize("char", [chr(i) for i in range(0x20, 0x7F)] + ["é", "杭", "\x7f"])
def test_a_url_is_sent_as_httpx_would_send_it(char: str) -> None:
    # The fast path skips URL parsing for characters httpx leaves alone; every other
    # character goes through httpx.URL. Either way the bytes are the ones httpx sent.
    for path, query in (
        (f"/v1/a{char}b", b""),
        ("/v1/a", f"q={char}&r=%E6%9D%AD".encode("latin-1", "replace")),
        (f"/v1/{char}", f"{char}".encode("latin-1", "replace")),
    ):
        target = path + ("?" + query.decode("latin-1") if query else "")
        assert _ours(path, query) == _httpx_target(target), (path, query)


@dataclass
class Seen:
    raw_path: str = ""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    calls: int = 0


@dataclass
class Upstream:
    url: str
    seen: Seen


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    seen = Seen()

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.calls += 1
        seen.raw_path = request.raw_path
        seen.headers = list(request.raw_headers)
        seen.body = await request.read()
        if request.path == "/v1/slow":
            await asyncio.sleep(2)
        if request.path == "/v1/gzip":
            return web.Response(
                body=gzip.compress(b'{"ok": true}'),
                headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
            )
        if request.path == "/v1/down":
            return web.Response(status=503, text="db away")
        return web.Response(body=b"hello", headers={"Location": "/v1/things/7"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield Upstream(f"http://127.0.0.1:{port}", seen)
    await runner.cleanup()


@pytest.fixture(params=["http1", "aiohttp"])
async def upstreams(upstream: Upstream, request: pytest.FixtureRequest) -> AsyncIterator[Upstreams]:
    settings = GatewaySettings(
        scoring_url=upstream.url,
        policy_url="http://127.0.0.1:9",  # discard: nothing listens
        upstream_timeout=0.5,
        breaker_threshold=3,
    )
    session = upstream_session(httpx.Limits(max_connections=10))
    pool = Http1Pool(10, 5.0)
    fast = Http1Sender(pool) if request.param == "http1" else None
    async with httpx.AsyncClient() as client:
        yield Upstreams(settings, client, session, fast=fast)
    await pool.aclose()
    await session.close()


async def test_the_request_reaches_the_service_as_sent(
    upstreams: Upstreams, upstream: Upstream
) -> None:
    assert upstreams.sender() is upstreams.fast
    headers = [
        (b"accept", b"application/json"),
        (b"user-agent", "caf\u00e9 \u676d".encode()),
        (b"authorization", b"Bearer internal"),
    ]
    answer = await upstreams.request(
        "scoring",
        "POST",
        "/v1/a|b/[c]",
        query=b"q=%E6%9D%AD&r={x}",
        headers=headers,
        content=b"payload",
    )
    assert answer.status_code == 200
    assert answer.content == b"hello"
    assert (b"location", b"/v1/things/7") in answer.headers
    assert upstream.seen.raw_path == "/v1/a|b/[c]?q=%E6%9D%AD&r={x}"
    sent = {k.lower(): v for k, v in upstream.seen.headers}
    assert sent[b"user-agent"] == "caf\u00e9 \u676d".encode()
    assert sent[b"authorization"] == b"Bearer internal"
    assert upstream.seen.body == b"payload"


async def test_a_compressed_answer_is_decoded(upstreams: Upstreams) -> None:
    answer = await upstreams.request("scoring", "GET", "/v1/gzip", headers=[])
    assert answer.json() == {"ok": True}


async def test_the_services_own_unavailable_answer_comes_back(upstreams: Upstreams) -> None:
    answer = await upstreams.request("scoring", "GET", "/v1/down", headers=[])
    assert answer.status_code == 503
    assert answer.content == b"db away"


async def test_a_slow_service_is_a_504(upstreams: Upstreams) -> None:
    with pytest.raises(UpstreamTimeout):
        await upstreams.request("scoring", "GET", "/v1/slow", headers=[])


async def test_an_unreachable_service_is_a_503_and_opens_its_breaker(
    upstreams: Upstreams,
) -> None:
    for _ in range(3):
        with pytest.raises(ServiceUnavailable) as unreachable:
            await upstreams.request("policy", "GET", "/v1/x", headers=[])
        assert "unreachable" in str(unreachable.value.detail)
    with pytest.raises(ServiceUnavailable) as paused:
        await upstreams.request("policy", "GET", "/v1/x", headers=[])
    assert "paused" in str(paused.value.detail)
    assert "Retry-After" in paused.value.headers


async def test_a_header_that_cannot_be_sent_is_the_callers_400(
    upstreams: Upstreams, upstream: Upstream
) -> None:
    with pytest.raises(BadRequest):
        await upstreams.request("scoring", "GET", "/v1/x", headers=[(b"x-odd", b"caf\xe9")])
    assert upstream.seen.calls == 0


async def test_while_tracing_the_instrumented_httpx_client_is_used(
    upstreams: Upstreams,
) -> None:
    upstreams.tracing = lambda: True
    upstreams._sender = None
    assert upstreams.sender() is upstreams.httpx


def test_the_session_is_aiohttps() -> None:
    async def make() -> None:
        session = upstream_session(httpx.Limits(max_connections=5))
        assert isinstance(session, aiohttp.ClientSession)
        assert session.connector is not None and session.connector.limit == 5
        await session.close()

    asyncio.run(make())
