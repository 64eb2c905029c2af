"""Who is asking, and may they: the session, the route guards and the CSRF check.

Guards are dependencies, so a route states what it needs in its signature:
`EnterpriseSession` for the legal person's pages, `require_staff("government", "operator")`
for the staff pages of part 2.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from portal.gateway import GatewayClient
from portal.oidc import StaffOidc
from portal.security import (
    UNSAFE_METHODS,
    CsrfRefused,
    check_origin,
    presented_token,
    session_cookie,
    tokens_match,
)
from portal.sessions import Session, SessionStore
from portal.settings import PortalSettings

LOGOUT_PATH = "/auth/logout"


class LoginRequired(Exception):
    """No session: the browser goes to the sign-in page of `audience`."""

    def __init__(self, audience: str = "enterprise") -> None:
        super().__init__(audience)
        self.audience = audience


class NotAllowed(Exception):
    """Signed in, but not as someone who may see this (403)."""


def get_settings(request: Request) -> PortalSettings:
    settings: PortalSettings = request.app.state.settings
    return settings


def get_store(request: Request) -> SessionStore:
    store: SessionStore = request.app.state.sessions
    return store


def get_gateway(request: Request) -> GatewayClient:
    gateway: GatewayClient = request.app.state.gateway
    return gateway


def get_oidc(request: Request) -> StaffOidc:
    oidc: StaffOidc = request.app.state.oidc
    return oidc


Settings = Annotated[PortalSettings, Depends(get_settings)]
Oidc = Annotated[StaffOidc, Depends(get_oidc)]
Store = Annotated[SessionStore, Depends(get_store)]
Gateway = Annotated[GatewayClient, Depends(get_gateway)]


async def current_session(request: Request) -> Session | None:
    """The live session of this browser, loaded once per request."""
    if hasattr(request.state, "portal_session"):
        cached: Session | None = request.state.portal_session
        return cached
    cookie = request.cookies.get(session_cookie(get_settings(request)))
    session = await get_store(request).load(cookie) if cookie else None
    request.state.portal_session = session
    return session


MaybeSession = Annotated[Session | None, Depends(current_session)]


async def csrf_guard(request: Request) -> None:
    """Every unsafe request: same origin where the browser says so, and the session's token."""
    if request.method not in UNSAFE_METHODS:
        return
    check_origin(request, get_settings(request))
    session = await current_session(request)
    if session is None:
        if request.url.path == LOGOUT_PATH:
            return  # nothing to end: the route only clears a stale cookie
        raise CsrfRefused("no session")
    if not tokens_match(await presented_token(request), session.csrf_token):
        raise CsrfRefused("missing or wrong token")


async def require_enterprise(session: MaybeSession) -> Session:
    if session is None:
        raise LoginRequired("enterprise")
    if not session.principal.is_enterprise:
        raise NotAllowed()
    return session


EnterpriseSession = Annotated[Session, Depends(require_enterprise)]


def require_staff(
    kind: str | None = None, role: str | None = None
) -> Callable[[Session | None], Awaitable[Session]]:
    """A guard for staff pages: `kind` government or bank (None: either), `role` operator for
    pages that change something (None: viewers too)."""

    async def guard(session: MaybeSession) -> Session:
        if session is None:
            raise LoginRequired("staff")
        p = session.principal
        if not p.is_staff or (kind is not None and p.kind != kind):
            raise NotAllowed()
        if role == "operator" and p.role != "operator":
            raise NotAllowed()
        return session

    return guard
