"""A bound on request bodies, enforced while they are read.

A declared `Content-Length` is checked up front, but a chunked body declares none: without
this, the proxy and the unauthenticated login and token endpoints read whatever is sent into
memory before looking at its size. Proxied routes get `max_body_bytes` (imports are large);
the gateway's own routes take small forms and JSON documents.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.settings import UPSTREAMS

OWN_ROUTES_MAX_BODY = 64 * 1024
_PROXIED = tuple(f"/v1/{name}/" for name in UPSTREAMS)


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, proxied_max: int) -> None:
        self.app = app
        self.proxied_max = proxied_max

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        limit = self.proxied_max if path.startswith(_PROXIED) else OWN_ROUTES_MAX_BODY
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

        await self.app(scope, limited, send)
