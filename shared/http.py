"""The HTTP client factory: timeouts, pooling, the request id forwarded.

`fast=True` gives the client an aiohttp transport (httpx-aiohttp): httpx's own connection
pool collapses under high concurrency (encode/httpx issue 3215; measured here: a FastAPI proxy
on httpx kept 6-7% of the upstream's throughput), so the gateway's hot path uses aiohttp
underneath while the code keeps httpx's API.
"""

from __future__ import annotations

import httpx

from shared.logging import current_request_id


async def _forward_request_id(request: httpx.Request) -> None:
    rid = current_request_id()
    if rid and "x-request-id" not in request.headers:
        request.headers["x-request-id"] = rid


# An idle pooled connection is dropped after this long, well before the server drops it:
# uvicorn closes an idle keep-alive connection after 5 s, httpx's default is also 5 s, and a
# request sent on a connection the server is closing at that moment fails with a ReadError
# (seen as a portal sign-in's 503 on a loaded machine).
KEEPALIVE_EXPIRY = 3.0


def create_http_client(
    base_url: str = "",
    *,
    timeout: float = 10.0,
    connect_timeout: float = 2.0,
    max_connections: int = 100,
    transport: httpx.AsyncBaseTransport | None = None,
    fast: bool = False,
) -> httpx.AsyncClient:
    if transport is None and fast:
        from httpx_aiohttp import AiohttpTransport

        transport = AiohttpTransport()
    limits = httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        keepalive_expiry=KEEPALIVE_EXPIRY,
    )
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(timeout, connect=connect_timeout),
        limits=limits,
        transport=transport,
        event_hooks={"request": [_forward_request_id]},
    )
