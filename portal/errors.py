"""What a person sees when something goes wrong.

Browsers get a zh-CN page with the right status; HTMX requests and API-minded clients get
`application/problem+json` (portal.js shows its title in the page's alert region). The
portal's own failures reuse the shared problem handlers (database unreachable → 503 and so
on) and only change how the answer is presented, so an upstream failure is never a bare 500.
"""

from __future__ import annotations

import json
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.responses import Response

from portal import labels
from portal.deps import LoginRequired, NotAllowed
from portal.gateway import GatewayProblem
from portal.security import CsrfRefused, session_cookie
from portal.sessions import SessionEnded
from portal.settings import PortalSettings
from portal.web import render
from shared.errors import PROBLEM_MEDIA_TYPE, TYPE_BASE, install_problem_handlers
from shared.logging import current_request_id

log = structlog.get_logger("portal.errors")


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return is_htmx(request) or ("json" in accept and "text/html" not in accept)


def error_response(
    request: Request, status: int, slug: str | None = None, detail: str | None = None
) -> Response:
    title = labels.status_title(status)
    text = detail or labels.problem_text(status, slug)
    rid = current_request_id()
    if wants_json(request):
        body: dict[str, Any] = {
            "type": TYPE_BASE + (slug or "portal-error"),
            "title": title,
            "status": status,
            "detail": text,
            "instance": request.url.path,
        }
        if rid:
            body["request_id"] = rid
        return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE)
    return render(
        request,
        "error.html",
        {"status": status, "title": title, "detail": text, "request_id": rid},
        status_code=status,
    )


def _login_redirect(request: Request, target: str) -> Response:
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


async def _login_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    if request.method != "GET" and not is_htmx(request):
        return error_response(request, 401)
    return _login_redirect(request, "/auth/staff" if exc.audience == "staff" else "/?login=1")


async def _session_ended(request: Request, exc: Exception) -> Response:
    settings: PortalSettings = request.app.state.settings
    response = _login_redirect(request, "/?expired=1")
    response.delete_cookie(session_cookie(settings), path="/", secure=settings.secure_cookies)
    return response


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return error_response(request, 403)


async def _csrf_refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CsrfRefused)
    log.warning("csrf refused", path=request.url.path, reason=exc.reason)
    return error_response(
        request, 403, "csrf", "页面已过期或请求来源不明，操作未执行。请刷新页面后重试。"
    )


async def _gateway_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayProblem)
    status = exc.status if 400 <= exc.status < 600 else 502
    if status == 401:
        # The gateway refused the session's token even after a refresh was tried.
        return await _session_ended(request, SessionEnded("401"))
    if status >= 500:
        log.warning("upstream failure", path=request.url.path, status=exc.status)
    return error_response(request, status, exc.slug)


def install_error_pages(app: FastAPI) -> None:
    # The shared handlers decide the status (503 for a database away, 422 for bad input...);
    # ours keep that decision and render it for a person.
    install_problem_handlers(app)
    shared_handlers = dict(app.exception_handlers)

    def presented(handler: Any) -> Any:
        async def present(request: Request, exc: Exception) -> Response:
            response: Response = await handler(request, exc)
            if wants_json(request):
                return response
            try:
                body = json.loads(bytes(response.body))
            except ValueError:
                body = {}
            slug = str(body.get("type", "")).rsplit("/", 1)[-1] or None
            return error_response(request, response.status_code, slug)

        return present

    for key, handler in shared_handlers.items():
        app.add_exception_handler(key, presented(handler))
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(SessionEnded, _session_ended)
    app.add_exception_handler(NotAllowed, _not_allowed)
    app.add_exception_handler(CsrfRefused, _csrf_refused)
    app.add_exception_handler(GatewayProblem, _gateway_problem)
