"""A bound on request bodies, enforced while they are read.

A declared `Content-Length` is checked up front, but a chunked body declares none: without
this, the proxy and the unauthenticated login and token endpoints read whatever is sent into
memory before looking at its size. Proxied routes get `max_body_bytes`; the gateway's own
routes take small forms and JSON documents.

One route takes more: a multipart upload to `POST /v1/scoring/imports` (a province's million
enterprises, best sent as a .csv.gz) gets `max_import_body_bytes` and, upstream, the import's
own time (`import_timeout`). The scoring service bounds the file again, as sent and inflated,
so a gzip bomb is refused there with 413. Any other body on that path (not multipart) keeps
the ordinary bound.
"""

from __future__ import annotations

import httpx
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.settings import UPSTREAMS

OWN_ROUTES_MAX_BODY = 64 * 1024
IMPORT_PATH = "/v1/scoring/imports"
PROXIED_PREFIXES = tuple(f"/v1/{name}/" for name in UPSTREAMS)


def is_import_upload(scope: Scope) -> bool:
    """A multipart POST to the import route (the only large body the platform takes)."""
    if scope.get("method") != "POST" or scope.get("path", "").rstrip("/") != IMPORT_PATH:
        return False
    ctype = next((v for k, v in scope.get("headers", []) if k == b"content-type"), b"")
    return bytes(ctype).lower().startswith(b"multipart/form-data")


def import_deadline(scope: Scope, seconds: float) -> httpx.Timeout | None:
    """The upstream timeout of an import upload (None: the upstream's own)."""
    return httpx.Timeout(seconds, connect=1.0, pool=seconds) if is_import_upload(scope) else None


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, proxied_max: int, import_max: int | None = None) -> None:
        self.app = app
        self.proxied_max = proxied_max
        self.import_max = proxied_max if import_max is None else import_max

    def limit(self, scope: Scope) -> int:
        path: str = scope.get("path", "")
        if not path.startswith(PROXIED_PREFIXES):
            return OWN_ROUTES_MAX_BODY
        return self.import_max if is_import_upload(scope) else self.proxied_max

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.app(scope, limited_receive(scope, receive, self.limit(scope)), send)


def limited_receive(scope: Scope, receive: Receive, limit: int) -> Receive:
    """`receive` that raises 413 once the body (declared or received) exceeds `limit`."""
    declared = next((v for k, v in scope.get("headers", []) if k == b"content-length"), None)
    received = 0

    def too_large() -> HTTPException:
        return HTTPException(413, f"Bodies are limited to {limit} bytes")

    async def limited() -> Message:
        nonlocal received
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise too_large()
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise too_large()
        return message

    return limited
