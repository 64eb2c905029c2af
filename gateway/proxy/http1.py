"""The proxy's HTTP/1.1 client: keep-alive connections on asyncio protocols, httptools' parser.

**Why it is written here.** A proxied request is one small exchange with a service on a kept
connection, and the client's own bookkeeping was the largest part of the gateway's CPU per
request: in front of the same service (wrk, c=4, CPU of the proxy process from /proc), a bare
ASGI forwarder spent 220 µs per request with aiohttp's `ClientSession` and 116 µs with an
asyncio protocol and httptools' response parser; the gateway spent about 100 µs per request
in aiohttp's request and response machinery (its timers, tracing hooks, cookie jar, request
and response models, stream readers) around one `write` and one parse. httpx's own pool
(httpcore) costs more than aiohttp's (encode/httpx issue 3215); no other well-kept asyncio
client is leaner. The parsing is httptools' (llhttp, uvicorn's parser too); what is written
here is the connection pool and the request line, and both keep what aiohttp did for us.

**What it keeps from aiohttp as the proxy used it** (`AiohttpSender`, still selectable with
`GATEWAY_UPSTREAM_TRANSPORT=aiohttp`; tests/gateway/test_upstream_aiohttp.py runs the same
checks against both):
* the request: `Host` first, the given headers in order and as given (UTF-8 text), then
  aiohttp's defaults for what was not given (`Accept: */*`, its `Accept-Encoding` and
  `User-Agent`), `Content-Length` for a body or any method but GET, HEAD, OPTIONS and
  TRACE (0 when empty), `Content-Type: application/octet-stream` for a body or a POST,
  PUT or PATCH that gave none; a header that cannot be sent (a line break in it) is
  refused before anything is sent;
* the answer: status, raw headers (names lower-cased), the whole body, decoded with
  aiohttp's own decompressors when the service compressed it as aiohttp offers; HEAD,
  1xx, 204 and 304 without a body, a body up to the close when neither length nor
  chunking is given;
* the pool: at most `limit` connections in use, a caller waiting for a free one at most
  the pool timeout, connections kept `keepalive_expiry` seconds (a connection the service
  closed is dropped as soon as it is seen closed), TLS with the given context for https;
* the timeouts: the pool wait with the connect (aiohttp's `connect`), the connect alone
  (`sock_connect`), the silence between two reads of the answer (`sock_read`);
* the failures, as the httpx exceptions httpx-aiohttp's map raised for aiohttp's own, so
  `Upstreams` classifies them as before: no connection (refused, a connect or pool
  timeout) and a connection lost before the answer's head are `httpx.ConnectTimeout`
  (aiohttp's `ClientConnectorError`, `ServerDisconnectedError` and `ClientOSError` are all
  `ClientConnectionError`, which the map sends there); a connection lost in the body is
  `httpx.ReadError` (`ClientPayloadError`); silence is `httpx.ReadTimeout`; and, as aiohttp
  did, an idempotent request whose kept connection turns out dead before any answer is sent
  once more on a new connection. One difference, on purpose: an answer that is not HTTP is
  `httpx.RemoteProtocolError` (the 502 `Upstreams` documents; aiohttp's unmapped
  `ClientResponseError` made it a 500).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httptools
import httpx
from aiohttp.compression_utils import (
    HAS_BROTLI,
    HAS_ZSTD,
    BrotliDecompressor,
    ZLibDecompressor,
    ZSTDDecompressor,
)

from shared.errors import BadRequest

# What aiohttp adds when the caller did not say (aiohttp.client_reqrep.ClientRequest).
_DEFAULTS = (
    *((k.lower().encode(), v.encode()) for k, v in aiohttp.ClientRequest.DEFAULT_HEADERS.items()),
    (b"user-agent", aiohttp.http.SERVER_SOFTWARE.encode()),
)
# The codings aiohttp's parser decodes (the ones it offers, and these whatever it offered).
_DECODED = frozenset({b"gzip", b"deflate", b"br", b"zstd"})
_NO_BODY_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_POST_METHODS = frozenset({"POST", "PUT", "PATCH"})
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
_BAD_IN_HEADER = (b"\r", b"\n", b"\x00")


class _Lost(Exception):
    """The connection ended before the answer's head: retried once on a new connection for
    an idempotent request that reused a kept connection (as aiohttp did)."""


class Origin:
    """Where one upstream is: its connection key and what `Host` says."""

    __slots__ = ("host", "host_header", "port", "ssl")

    def __init__(self, base_url: str, context: ssl.SSLContext | None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if https else 80)
        self.ssl = (context or ssl.create_default_context()) if https else None
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = self.port == (443 if https else 80)
        self.host_header = (host if default else f"{host}:{self.port}").encode("idna")


class Exchange(asyncio.Protocol):
    """One kept connection, one request at a time: httptools calls back with the answer."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.reused = False
        self._parser: httptools.HttpResponseParser | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._paused = False
        self._head = False
        self._headers_done = False
        self._framed = False  # Content-Length or chunked: the body does not end at the close
        self._keep = False
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self._read_timeout: float | None = None
        self._last_read = 0.0
        self._timer: asyncio.TimerHandle | None = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._stop_timer()
        drained = self._drained
        if drained is not None and not drained.done():
            drained.set_result(None)
        if self._waiter is None or self._waiter.done():
            return
        if not self._headers_done:
            self._fail(_Lost(repr(exc) if exc else "the service closed the connection"))
        elif not self._framed and not self._head:
            self._finish()  # the body was everything up to the close
        else:
            self._fail(httpx.ReadError("The answer's body was not completed"))

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None or self._waiter is None or self._waiter.done():
            # Nothing asked for: a kept connection with stray bytes cannot be trusted again.
            self._abandon()
            return
        self._last_read = self.loop.time()
        try:
            parser.feed_data(data)
        except Exception as exc:  # httptools' errors, an upgrade among them: not an answer
            self._fail(httpx.RemoteProtocolError(f"The answer is not HTTP: {exc}"))
            self._abandon()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        drained = self._drained
        if drained is not None and not drained.done():
            drained.set_result(None)

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-length" or (
            name == b"transfer-encoding" and b"chunked" in value.lower()
        ):
            self._framed = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        assert self._parser is not None
        self.status = self._parser.get_status_code()
        if self.status < 200:
            return  # an interim answer: its message completes and the real one follows
        self._headers_done = True
        if self._head:
            # No body follows a HEAD's answer, whatever its Content-Length says; the parser
            # cannot be told, so this exchange ends here and the next has a new parser.
            self._keep = self._parser.should_keep_alive()
            self._finish()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.status < 200:
            self.headers, self.body, self._framed = [], [], False
            return
        if self._head:
            return
        assert self._parser is not None
        self._keep = self._parser.should_keep_alive()
        self._finish()

    # one exchange

    async def exchange(
        self, head: bytes, body: bytes, is_head: bool, read_timeout: float | None
    ) -> bool:
        """Send the request and wait for the whole answer (`status`, `headers`, `body`).
        True when the connection can be kept for another request."""
        assert self.transport is not None
        if self.closed:
            raise _Lost("the service closed the connection")
        self._parser = httptools.HttpResponseParser(self)
        self._waiter = self.loop.create_future()
        self._head = is_head
        self._headers_done = self._framed = self._keep = False
        self.status, self.headers, self.body = 0, [], []
        try:
            if body:
                self.transport.writelines((head, body))
            else:
                self.transport.write(head)
            if self._paused:
                # A large body: the silence to time is the service's, after it has all of
                # it, unless it answers before it has read it all (a 413, say).
                self._drained = self.loop.create_future()
                try:
                    await self._drained
                finally:
                    self._drained = None
                if self._waiter.done() and self.transport.get_write_buffer_size():
                    # The rest of the body is not wanted: dropped, and the connection with it.
                    self.closed = True
                    self.transport.abort()
            self._read_timeout = read_timeout
            if read_timeout is not None and not self._waiter.done():
                self._last_read = self.loop.time()
                self._timer = self.loop.call_at(self._last_read + read_timeout, self._check_silence)
            await self._waiter
        finally:
            self._stop_timer()
            self._parser = None
            if not self._waiter.done():
                self._waiter.cancel()  # we were cancelled: nothing is to be told any more
        return self._keep and not self.closed

    def _check_silence(self) -> None:
        assert self._read_timeout is not None
        due = self._last_read + self._read_timeout
        if self.loop.time() < due:
            self._timer = self.loop.call_at(due, self._check_silence)
            return
        self._timer = None
        self._fail(httpx.ReadTimeout("Timeout on reading data from socket"))
        self._abandon()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _finish(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        self._release_drain()

    def _fail(self, exc: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
        self._release_drain()

    def _release_drain(self) -> None:
        drained = self._drained
        if drained is not None and not drained.done():
            drained.set_result(None)

    def _abandon(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def close(self) -> None:
        self._abandon()


class Http1Pool:
    """Kept connections per origin, at most `limit` in use at once (0: no bound)."""

    def __init__(
        self,
        limit: int,
        keepalive_expiry: float | None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.limit = limit
        self.keepalive_expiry = keepalive_expiry
        self.ssl_context = ssl_context
        self._idle: dict[tuple[str, int], list[Exchange]] = {}
        self._in_use = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._origins: dict[str, Origin] = {}
        self._closed = False

    def origin(self, base_url: str) -> Origin:
        origin = self._origins.get(base_url)
        if origin is None:
            origin = self._origins[base_url] = Origin(base_url, self.ssl_context)
        return origin

    async def acquire(
        self, origin: Origin, connect: float | None, pool: float | None, fresh: bool = False
    ) -> Exchange:
        """A kept connection to `origin`, or a new one; `fresh`: a new one in any case."""
        try:
            async with asyncio.timeout(pool):
                while self.limit and self._in_use >= self.limit:
                    waiter = asyncio.get_running_loop().create_future()
                    self._waiters.append(waiter)
                    try:
                        await waiter
                    except BaseException:
                        if waiter.done() and not waiter.cancelled():
                            self._wake()  # woken, but leaving: the free slot is the next's
                        raise
                    finally:
                        if waiter in self._waiters:
                            self._waiters.remove(waiter)
                self._in_use += 1
                try:
                    if not fresh:
                        kept = self._kept(origin)
                        if kept is not None:
                            return kept
                    return await self._connect(origin, connect)
                except BaseException:
                    self._in_use -= 1
                    self._wake()
                    raise
        except TimeoutError:
            raise httpx.ConnectTimeout("Connection timeout to host") from None

    def _kept(self, origin: Origin) -> Exchange | None:
        idle = self._idle.get((origin.host, origin.port))
        if not idle:
            return None
        now = time.monotonic()
        expiry = self.keepalive_expiry
        while idle:
            conn = idle.pop()
            if conn.closed or (expiry is not None and now - conn.idle_since > expiry):
                conn.close()
                continue
            conn.reused = True
            return conn
        return None

    async def _connect(self, origin: Origin, connect_within: float | None) -> Exchange:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(connect_within):
                _, conn = await loop.create_connection(
                    lambda: Exchange(loop),
                    origin.host,
                    origin.port,
                    ssl=origin.ssl,
                    server_hostname=origin.host if origin.ssl is not None else None,
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"Connection timeout to host {origin.host}") from None
        except OSError as exc:
            raise httpx.ConnectTimeout(
                f"Cannot connect to host {origin.host}:{origin.port}: {exc}"
            ) from exc
        return conn

    def release(self, origin: Origin, conn: Exchange, keep: bool) -> None:
        self._in_use -= 1
        if keep and not conn.closed and not self._closed:
            conn.idle_since = time.monotonic()
            idle = self._idle.setdefault((origin.host, origin.port), [])
            idle.append(conn)
            # The oldest lie at the bottom of the stack and might never be popped.
            expiry = self.keepalive_expiry
            while idle and (
                idle[0].closed
                or (expiry is not None and conn.idle_since - idle[0].idle_since > expiry)
            ):
                idle.pop(0).close()
        else:
            conn.close()
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def request(
        self,
        origin: Origin,
        method: str,
        head: bytes,
        body: bytes,
        timeouts: httpx.Timeout,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """One exchange: status, raw headers (names lower-cased), the whole (decoded) body."""
        fresh = False
        while True:
            conn = await self.acquire(origin, timeouts.connect, timeouts.pool, fresh)
            keep = False
            try:
                keep = await conn.exchange(head, body, method == "HEAD", timeouts.read)
            except _Lost as lost:
                if conn.reused and not fresh and method in _IDEMPOTENT:
                    fresh = True  # a kept connection the service had closed: once more
                    continue
                raise httpx.ConnectTimeout(f"Server disconnected: {lost}") from None
            finally:
                self.release(origin, conn, keep)
            return conn.status, conn.headers, _decoded(conn.headers, conn.body)

    async def aclose(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()


def _decoded(headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> bytes:
    """The body as aiohttp gave it: decoded (with aiohttp's own decompressors) when its
    `Content-Encoding` is one aiohttp decodes, else as sent."""
    body = b"".join(chunks) if len(chunks) != 1 else chunks[0]
    coding = next((v.lower() for k, v in headers if k == b"content-encoding"), None)
    if not body or coding not in _DECODED:
        return body
    decompressor: BrotliDecompressor | ZLibDecompressor | ZSTDDecompressor
    if coding == b"br" and HAS_BROTLI:
        decompressor = BrotliDecompressor()
    elif coding == b"zstd" and HAS_ZSTD:
        decompressor = ZSTDDecompressor()
    elif coding in (b"gzip", b"deflate"):
        # A "deflate" body without the zlib header (a common mistake) is read raw.
        raw = coding == b"deflate" and body[0] & 0xF != 8
        decompressor = ZLibDecompressor(encoding=coding.decode(), suppress_deflate_header=raw)
    else:
        raise httpx.ReadError(f"Can not decode content-encoding: {coding.decode()}")
    try:
        return decompressor.decompress_sync(body) + decompressor.flush()
    except Exception as exc:
        raise httpx.ReadError(f"Can not decode content-encoding: {coding.decode()}") from exc


def request_head(
    method: str, target: str, origin: Origin, headers: Any, content_length: int
) -> bytes:
    """The request line and headers as they go on the wire (see the module docstring)."""
    pairs: list[tuple[bytes, bytes]]
    if isinstance(headers, dict):
        pairs = [(k.lower().encode("ascii"), v.encode("utf-8")) for k, v in headers.items()]
    else:
        pairs = [(k.lower(), v) for k, v in headers]
    parts = [method.encode("ascii"), b" ", target.encode("ascii"), b" HTTP/1.1\r\nHost: "]
    parts += [origin.host_header, b"\r\n"]
    given = set()
    for name, value in pairs:
        if name == b"host":
            continue  # ours is the service's
        # Text in UTF-8, as aiohttp wrote it: the proxy refused anything else already.
        name.decode("ascii")
        value.decode("utf-8")
        if any(c in value or c in name for c in _BAD_IN_HEADER) or not name:
            raise BadRequest("The request cannot be forwarded as sent")
        given.add(name)
        parts += [name, b": ", value, b"\r\n"]
    for name, value in _DEFAULTS:
        if name not in given:
            parts += [name, b": ", value, b"\r\n"]
    if b"content-type" not in given and (content_length or method in _POST_METHODS):
        parts.append(b"content-type: application/octet-stream\r\n")
    if b"content-length" not in given and (content_length or method not in _NO_BODY_METHODS):
        parts += [b"content-length: ", str(content_length).encode(), b"\r\n"]
    parts.append(b"\r\n")
    return b"".join(parts)
