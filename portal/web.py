"""Templates and static files.

Static files are served under versioned URLs (`/static/js/charts.js?v=<content hash>`): a URL
whose version matches the file is cached for a year (`immutable`), any other is revalidated,
so a deployment never leaves a browser on an old script.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from portal import labels

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
TEMPLATES_DIR = HERE / "templates"
CHINA = timezone(timedelta(hours=8), "CST")
IMMUTABLE = "public, max-age=31536000, immutable"


class VersionedStatic(StaticFiles):
    def __init__(self, directory: Path) -> None:
        super().__init__(directory=directory)
        self._versions: dict[str, str] = {}

    def version(self, path: str) -> str:
        v = self._versions.get(path)
        if v is None:
            full = (STATIC_DIR / path).resolve()
            if not full.is_relative_to(STATIC_DIR.resolve()):
                raise ValueError(f"{path} is outside the static folder")
            v = hashlib.sha256(full.read_bytes()).hexdigest()[:12]
            self._versions[path] = v
        return v

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code in (200, 304):
            wanted = parse_qs(scope.get("query_string", b"").decode()).get("v", [""])[0]
            try:
                current = self.version(path)
            except (OSError, ValueError):
                current = None
            response.headers["Cache-Control"] = (
                IMMUTABLE if wanted and wanted == current else "no-cache"
            )
        return response


STATIC = VersionedStatic(STATIC_DIR)


def static_url(path: str) -> str:
    return f"/static/{path}?v={STATIC.version(path)}"


def cny(amount: float | int | None) -> str:
    """Whole CNY as a person reads it: 500,000 → 50万元; 12,000,000 → 1,200万元."""
    if amount is None:
        return "—"
    if abs(amount) >= 10_000:
        wan = amount / 10_000
        text = f"{wan:,.0f}" if wan == int(wan) else f"{wan:,.1f}"
        return f"{text}万元"
    return f"{amount:,.0f}元"


def pct(value: float | None, digits: int = 0) -> str:
    """A share 0..1 as a percentage."""
    if value is None:
        return "—"
    return f"{value * 100:.{digits}f}%"


def number(value: float | int | None, digits: int = 1) -> str:
    if value is None:
        return "—"
    if float(value) == int(value):
        return f"{int(value):,}"
    if abs(value) < 1:
        return f"{value:.2g}"  # 0.04, not 0.0
    return f"{value:,.{digits}f}"


def when(value: str | datetime | None) -> str:
    if value is None:
        return "—"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(CHINA).strftime("%Y-%m-%d %H:%M")


templates = Jinja2Templates(directory=TEMPLATES_DIR)
templates.env.globals.update(static_url=static_url, labels=labels)
templates.env.filters.update(cny=cny, pct=pct, number=number, when=when)


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    session = getattr(request.state, "portal_session", None)
    base: dict[str, Any] = {
        "session": session,
        "principal": session.principal if session else None,
        "csrf_token": session.csrf_token if session else "",
        "request_id": getattr(request.state, "request_id", None),
        "path": request.url.path,
    }
    response: HTMLResponse = templates.TemplateResponse(
        request, name, {**base, **(context or {})}, status_code=status_code, headers=headers
    )
    return response
