"""Calling another of our services with a service token (credit and policy reading scoring).

The token comes from the component's token source (the gateway's token endpoint in a
deployment); the request id of the current request is forwarded by the HTTP client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import FastAPI

from shared.errors import ServiceUnavailable, UpstreamError


class ServiceClient:
    def __init__(self, app: FastAPI, audience: str, base_url: str) -> None:
        self.http: httpx.AsyncClient = app.state.http
        self.tokens = app.state.token_source
        # The caller's settings travel with the client (page sizes and the like).
        self.settings: Any = app.state.settings
        self.audience = audience
        self.base_url = base_url.rstrip("/")

    async def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET a JSON answer; any failure is an `UpstreamError` (a 502 problem)."""
        if self.tokens is None:
            raise ServiceUnavailable(f"No token source configured for calling {self.audience}")
        token = await self.tokens.token(self.audience)
        try:
            resp = await self.http.get(
                self.base_url + path,
                params=params,
                headers={"Authorization": f"Bearer {token}"},
            )
            resp.raise_for_status()
            return resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise UpstreamError(f"{self.audience} {path}: {type(exc).__name__}: {exc}") from exc

    async def pages(self, path: str, params: dict[str, Any]) -> AsyncIterator[list[Any]]:
        """The items of a keyset-paged list (`after` in, `next_after` out), page by page."""
        after: str | None = None
        while True:
            page = await self.get(path, {**params, **({"after": after} if after else {})})
            items: list[Any] = page.get("items") or []
            yield items
            after = page.get("next_after")
            if not after or not items:
                return
