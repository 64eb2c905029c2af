"""The public API in one OpenAPI document: the gateway's own routes plus every service's,
as the public sees them (`/v1/X` of a service becomes `/v1/<service>/X`).

Each service's document is fetched from the service and kept for a few minutes; a service
that cannot be reached is left out (and said so in the description) rather than failing the
whole document. Component schemas are prefixed with the service's name, because two services
may each define, say, `ProductOut` differently.
"""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import httpx
import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from gateway.settings import UPSTREAMS, GatewaySettings

log = structlog.get_logger("gateway.openapi")
CACHE_SECONDS = 300.0


def rebase(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A service's document as reached through the gateway, with its schemas namespaced."""
    text = json.dumps(spec).replace('"#/components/schemas/', f'"#/components/schemas/{name}_')
    doc: dict[str, Any] = json.loads(text)
    paths: dict[str, Any] = {}
    for path, item in doc.get("paths", {}).items():
        if not path.startswith("/v1/"):
            continue  # probes and metrics are not published through the gateway
        for operation in item.values():
            if isinstance(operation, dict):
                if "operationId" in operation:
                    operation["operationId"] = f"{name}_{operation['operationId']}"
                operation["tags"] = [f"{name}: {t}" for t in operation.get("tags", [])] or [name]
        paths[f"/v1/{name}{path.removeprefix('/v1')}"] = item
    schemas = {
        f"{name}_{key}": value
        for key, value in doc.get("components", {}).get("schemas", {}).items()
    }
    return {"paths": paths, "schemas": schemas}


class PublicOpenApi:
    def __init__(self) -> None:
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}

    async def _service(
        self, client: httpx.AsyncClient, settings: GatewaySettings, name: str
    ) -> dict[str, Any] | None:
        cached = self._cache.get(name)
        if cached and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        try:
            resp = await client.get(settings.upstream_url(name) + "/openapi.json", timeout=5.0)
            resp.raise_for_status()
            doc = rebase(name, resp.json())
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("service OpenAPI unavailable", service=name, error=type(exc).__name__)
            return cached[1] if cached else None
        self._cache[name] = (time.monotonic(), doc)
        return doc

    async def document(self, app: FastAPI) -> dict[str, Any]:
        merged = copy.deepcopy(app.openapi())
        settings: GatewaySettings = app.state.settings
        missing = []
        for name in UPSTREAMS:
            doc = await self._service(app.state.upstream_http, settings, name)
            if doc is None:
                missing.append(name)
                continue
            merged.setdefault("paths", {}).update(doc["paths"])
            merged.setdefault("components", {}).setdefault("schemas", {}).update(doc["schemas"])
        if missing:
            merged["info"]["description"] = (
                merged["info"].get("description", "")
                + f"\n\n(Not included right now, unreachable: {', '.join(missing)}.)"
            )
        return merged


def install(app: FastAPI) -> None:
    """Serve the merged document where FastAPI serves its own (`/docs` reads it from there)."""
    public = PublicOpenApi()
    app.router.routes = [
        r for r in app.router.routes if getattr(r, "path", None) != app.openapi_url
    ]

    @app.get(app.openapi_url or "/openapi.json", include_in_schema=False)
    async def openapi(request: Request) -> JSONResponse:
        return JSONResponse(await public.document(request.app))
