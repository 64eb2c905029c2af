"""Cookies, security headers and the CSRF check.

The CSRF token is per session, sent back in a hidden `csrf_token` field by forms and in an
`X-CSRF-Token` header by HTMX (portal.js reads it from a `<meta>` tag), and compared in
constant time. Before the token, where the browser says where a request comes from (`Origin`,
`Sec-Fetch-Site`), a cross-site unsafe request is refused outright: a second line that holds
even if a token leaked.
"""

from __future__ import annotations

import secrets

from fastapi import Request
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portal.settings import PortalSettings

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
_SAME_SITE_FETCH = frozenset({"same-origin", "none"})


def cookie_name(settings: PortalSettings, base: str) -> str:
    """`__Host-` needs Secure, Path=/ and no Domain; over plain http it would be refused by the
    browser, so development uses the bare name."""
    return f"__Host-{base}" if settings.secure_cookies else base


def session_cookie(settings: PortalSettings) -> str:
    return cookie_name(settings, "portal_session")


def state_cookie(settings: PortalSettings) -> str:
    return cookie_name(settings, "portal_esso_state")


def staff_login_cookie(settings: PortalSettings) -> str:
    return cookie_name(settings, "portal_staff_login")


class CsrfRefused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def check_origin(request: Request, settings: PortalSettings) -> None:
    origin = request.headers.get("origin")
    if origin is not None and origin.rstrip("/") != settings.public_origin:
        raise CsrfRefused("cross-origin request")
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in _SAME_SITE_FETCH:
        raise CsrfRefused("cross-site request")


async def presented_token(request: Request) -> str | None:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


def tokens_match(presented: str | None, expected: str) -> bool:
    if not presented:
        return False
    return secrets.compare_digest(presented.encode(), expected.encode())


def content_security_policy(settings: PortalSettings) -> str:
    form_action = "'self'"
    if settings.esso_origin != settings.public_origin:
        form_action += f" {settings.esso_origin}"
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self'",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
            f"form-action {form_action}",
        ]
    )


class SecurityHeadersMiddleware:
    """Pure ASGI: the headers every answer carries. Pages hold personal data, so anything but
    a static file is `no-store` unless the route said otherwise."""

    def __init__(self, app: ASGIApp, settings: PortalSettings) -> None:
        self.app = app
        self.headers = [
            ("Content-Security-Policy", content_security_policy(settings)),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "same-origin"),
            ("X-Frame-Options", "DENY"),
            ("Cross-Origin-Opener-Policy", "same-origin"),
            ("Cross-Origin-Resource-Policy", "same-origin"),
            ("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()"),
        ]
        if settings.public_url.startswith("https://"):
            self.headers.append(("Strict-Transport-Security", "max-age=31536000"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers:
                    headers.setdefault(name, value)
                headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, with_headers)
