"""The proxy's own HTTP/1.1 client against raw servers on loopback that answer as told: the
request it writes is aiohttp's, kept connections are reused and a dead one is survived as
aiohttp survived it, every framing of an answer is read, and each failure is classified as
aiohttp's was (tests/gateway/test_upstream_aiohttp.py runs the shared checks)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import pytest

from gateway.app import upstream_session
from gateway.proxy.http1 import Http1Pool
from gateway.proxy.upstreams import Http1Sender, Upstreams
from gateway.settings import GatewaySettings
from shared.errors import ServiceUnavailable, UpstreamError

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Raw"], Awaitable[None]]

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-type: text/plain\r\n\r\nhello"


@dataclass
class Raw:
    url: str = ""
    connections: int = 0
    heads: list[bytes] = field(default_factory=list)


async def read_head(reader: asyncio.StreamReader, raw: Raw) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    raw.heads.append(head)
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    if length:
        await reader.readexactly(length)
    return head


async def serve(handler: Handler) -> tuple[asyncio.Server, Raw]:
    raw = Raw()

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raw.connections += 1
        try:
            await handler(reader, writer, raw)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the client went away, or the test ended
        finally:
            writer.close()

    server = await asyncio.start_server(on_connection, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    raw.url = f"http://127.0.0.1:{port}"
    return server, raw


async def answers(*replies: bytes) -> Handler:
    """A connection answering each request in turn with the next reply, then closing."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: Raw) -> None:
        for reply in replies:
            await read_head(reader, raw)
            writer.write(reply)
            await writer.drain()

    return handler


def make_upstreams(url: str, limit: int = 10, timeout: float = 0.5) -> tuple[Upstreams, Http1Pool]:
    settings = GatewaySettings(scoring_url=url, upstream_timeout=timeout, breaker_threshold=50)
    pool = Http1Pool(limit, 5.0)
    return Upstreams(settings, httpx.AsyncClient(), fast=Http1Sender(pool)), pool


@pytest.fixture
async def servers() -> AsyncIterator[list[asyncio.Server]]:
    started: list[asyncio.Server] = []
    yield started
    for server in started:
        server.close()


async def start(servers: list[asyncio.Server], handler: Handler) -> Raw:
    server, raw = await serve(handler)
    servers.append(server)
    return raw


def header_set(head: bytes) -> dict[bytes, bytes]:
    lines = head.split(b"\r\n")[1:]
    return {k.strip().lower(): v.strip() for k, _, v in (ln.partition(b":") for ln in lines if ln)}


async def test_the_request_is_the_one_aiohttp_wrote(servers: list[asyncio.Server]) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: Raw) -> None:
        while True:
            head = await read_head(reader, raw)
            writer.write(OK.removesuffix(b"hello") if head.startswith(b"HEAD") else OK)
            await writer.drain()

    raw = await start(servers, handler)
    settings = GatewaySettings(scoring_url=raw.url)
    session = upstream_session(httpx.Limits(max_connections=10))
    pool = Http1Pool(10, 5.0)
    ours = Upstreams(settings, httpx.AsyncClient(), fast=Http1Sender(pool))
    theirs = Upstreams(settings, httpx.AsyncClient(), session)
    calls: list[tuple[str, list[tuple[bytes, bytes]], bytes]] = [
        ("GET", [], b""),
        ("GET", [(b"accept", b"application/json"), (b"user-agent", "杭州".encode())], b""),
        ("POST", [(b"content-type", b"application/json")], b'{"a": 1}'),
        ("POST", [], b""),
        ("PATCH", [], b""),
        ("PUT", [], b"x"),
        ("DELETE", [], b""),
        ("DELETE", [], b"x"),
        ("OPTIONS", [], b""),
        ("HEAD", [], b""),
    ]
    try:
        for method, headers, body in calls:
            for upstreams in (theirs, ours):
                await upstreams.request(
                    "scoring", method, "/v1/x", query=b"a=1", headers=headers, content=body
                )
            theirs_head, ours_head = raw.heads[-2], raw.heads[-1]
            assert ours_head.split(b"\r\n")[0] == theirs_head.split(b"\r\n")[0]
            assert header_set(ours_head) == header_set(theirs_head), method
    finally:
        await session.close()
        await pool.aclose()


async def test_a_kept_connection_is_reused(servers: list[asyncio.Server]) -> None:
    raw = await start(servers, await answers(OK, OK, OK))
    upstreams, pool = make_upstreams(raw.url)
    for _ in range(3):
        answer = await upstreams.request("scoring", "GET", "/v1/x", headers=[])
        assert (answer.status_code, answer.content) == (200, b"hello")
    assert raw.connections == 1
    await pool.aclose()


async def test_a_connection_the_service_closed_is_not_reused(
    servers: list[asyncio.Server],
) -> None:
    raw = await start(servers, await answers(OK))  # closes after one answer
    upstreams, pool = make_upstreams(raw.url)
    for _ in range(2):
        assert (await upstreams.request("scoring", "GET", "/v1/x", headers=[])).content == b"hello"
        await asyncio.sleep(0.05)
    assert raw.connections == 2
    await pool.aclose()


async def dies_on_second(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: Raw
) -> None:
    """Answers the first request, then drops the connection on reading the next (a kept
    connection the service closed while the request was on its way)."""
    if raw.connections == 1:
        await read_head(reader, raw)
        writer.write(OK)
        await writer.drain()
        await read_head(reader, raw)
        return
    while True:
        await read_head(reader, raw)
        writer.write(OK)
        await writer.drain()


async def test_an_idempotent_request_on_a_dead_kept_connection_is_sent_again(
    servers: list[asyncio.Server],
) -> None:
    raw = await start(servers, dies_on_second)
    upstreams, pool = make_upstreams(raw.url)
    await upstreams.request("scoring", "GET", "/v1/x", headers=[])
    answer = await upstreams.request("scoring", "GET", "/v1/x", headers=[])
    assert answer.content == b"hello"
    assert raw.connections == 2
    await pool.aclose()


async def test_a_post_on_a_dead_kept_connection_is_a_503_as_with_aiohttp(
    servers: list[asyncio.Server],
) -> None:
    raw = await start(servers, dies_on_second)
    upstreams, pool = make_upstreams(raw.url)
    await upstreams.request("scoring", "GET", "/v1/x", headers=[])
    with pytest.raises(ServiceUnavailable):
        await upstreams.request("scoring", "POST", "/v1/x", headers=[], content=b"{}")
    await pool.aclose()


@pytest.mark.parametrize(
    ("reply", "body"),
    [
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            b"hello world",
        ),
        (b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the close", b"until the close"),
        (b"HTTP/1.1 100 Continue\r\n\r\n" + OK, b"hello"),
        (b"HTTP/1.1 204 No Content\r\n\r\n", b""),
    ],
)
async def test_every_framing_of_an_answer_is_read(
    servers: list[asyncio.Server], reply: bytes, body: bytes
) -> None:
    raw = await start(servers, await answers(reply))
    upstreams, pool = make_upstreams(raw.url)
    answer = await upstreams.request("scoring", "GET", "/v1/x", headers=[])
    assert answer.content == body
    assert answer.status_code in (200, 204)
    await pool.aclose()


async def test_the_answer_to_a_head_has_no_body_and_the_connection_is_kept(
    servers: list[asyncio.Server],
) -> None:
    head = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"
    raw = await start(servers, await answers(head, OK))
    upstreams, pool = make_upstreams(raw.url)
    answer = await upstreams.request("scoring", "HEAD", "/v1/x", headers=[])
    assert (answer.status_code, answer.content) == (200, b"")
    assert (b"content-length", b"5") in answer.headers
    assert (await upstreams.request("scoring", "GET", "/v1/x", headers=[])).content == b"hello"
    assert raw.connections == 1
    await pool.aclose()


async def test_an_answer_cut_in_its_body_is_a_502(servers: list[asyncio.Server]) -> None:
    raw = await start(servers, await answers(b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\nhel"))
    upstreams, pool = make_upstreams(raw.url)
    with pytest.raises(UpstreamError):
        await upstreams.request("scoring", "GET", "/v1/x", headers=[])
    assert raw.connections == 2  # retried once: the method is idempotent
    await pool.aclose()


async def test_an_answer_that_is_not_http_is_a_502(servers: list[asyncio.Server]) -> None:
    raw = await start(servers, await answers(b"SSH-2.0-OpenSSH\r\n\r\n"))
    upstreams, pool = make_upstreams(raw.url)
    with pytest.raises(UpstreamError):
        await upstreams.request("scoring", "GET", "/v1/x", headers=[])
    await pool.aclose()


async def test_a_service_closing_without_an_answer_is_a_503(
    servers: list[asyncio.Server],
) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: Raw) -> None:
        await read_head(reader, raw)

    raw = await start(servers, hang_up)
    upstreams, pool = make_upstreams(raw.url)
    with pytest.raises(ServiceUnavailable):
        await upstreams.request("scoring", "GET", "/v1/x", headers=[])
    await pool.aclose()


async def test_callers_wait_for_a_free_connection_within_the_pool_timeout(
    servers: list[asyncio.Server],
) -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: Raw) -> None:
        while True:
            await read_head(reader, raw)
            await asyncio.sleep(0.2)
            writer.write(OK)
            await writer.drain()

    raw = await start(servers, slow)
    upstreams, pool = make_upstreams(raw.url, limit=1)
    answers_ = await asyncio.gather(
        *(upstreams.request("scoring", "GET", "/v1/x", headers=[]) for _ in range(2))
    )
    assert [a.content for a in answers_] == [b"hello", b"hello"]
    assert raw.connections == 1
    # The third waits longer than the pool timeout (0.5 s) behind two slow ones.
    results = await asyncio.gather(
        *(upstreams.request("scoring", "GET", "/v1/x", headers=[]) for _ in range(4)),
        return_exceptions=True,
    )
    assert any(isinstance(r, ServiceUnavailable) for r in results)
    await pool.aclose()


async def test_an_answer_before_the_whole_body_is_read_comes_back_at_once(
    servers: list[asyncio.Server],
) -> None:
    too_large = b"HTTP/1.1 413 Content Too Large\r\ncontent-length: 0\r\n\r\n"

    async def refuses(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: Raw) -> None:
        raw.heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(too_large)  # and reads no more of the body
        await writer.drain()
        await asyncio.sleep(5)

    raw = await start(servers, refuses)
    upstreams, pool = make_upstreams(raw.url, timeout=30)
    body = b"x" * (32 * 1024 * 1024)  # more than the sockets' buffers hold
    started = asyncio.get_running_loop().time()
    answer = await upstreams.request("scoring", "POST", "/v1/imports", headers=[], content=body)
    assert answer.status_code == 413
    assert asyncio.get_running_loop().time() - started < 10  # not the 30 s of a read timeout
    await pool.aclose()
