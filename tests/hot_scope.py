"""The ASGI scope of a GET as a hot read handler (`shared.app.HotRoute`) receives it, for
calling a handler directly and seeing whether it answers or leaves the request to its route."""

from __future__ import annotations

from typing import Any


def get_scope(app: Any, path: str, query: bytes = b"", token: str | None = None) -> Any:
    headers = [(b"host", b"service")]
    if token is not None:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    return {
        "type": "http",
        "method": "GET",
        "path": path,
        "query_string": query,
        "headers": headers,
        "app": app,
        "state": {},
    }
