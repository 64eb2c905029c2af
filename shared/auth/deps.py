"""FastAPI dependencies: who is calling, and may they.

Every service authorises on its own: the gateway's checks are a first line, never the only
one. Identity comes only from a verified internal token; headers such as `X-User` or
`X-USCC` are never read.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.auth.principal import Principal, PrincipalKind
from shared.auth.tokens import TokenVerifier
from shared.errors import Forbidden, Unauthorized

_bearer = HTTPBearer(auto_error=False, description="Internal token minted by the gateway")
# What changes something. A viewer's request with any of these is refused whatever route it
# reaches, so a route added later cannot forget the check.
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class ReadOnlyRole(Forbidden):
    slug = "read-only-role"
    title = "A viewer may not change anything"


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("A bearer token is required")
    verifier: TokenVerifier = request.app.state.verifier
    principal = await verifier.verify(credentials.credentials)
    if principal.read_only and request.method.upper() in UNSAFE_METHODS:
        raise ReadOnlyRole("Signed in with the viewer role: reading only. An operator can do this.")
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]


def require_kind(
    *kinds: PrincipalKind,
) -> Callable[[Principal], Coroutine[Any, Any, Principal]]:
    async def check(principal: CurrentPrincipal) -> Principal:
        if principal.kind not in kinds:
            raise Forbidden(f"This needs a {' or '.join(k.value for k in kinds)} principal")
        return principal

    return check


Government = Annotated[Principal, Depends(require_kind(PrincipalKind.GOVERNMENT))]
GovernmentOrService = Annotated[
    Principal, Depends(require_kind(PrincipalKind.GOVERNMENT, PrincipalKind.SERVICE))
]
Bank = Annotated[Principal, Depends(require_kind(PrincipalKind.BANK))]
Enterprise = Annotated[Principal, Depends(require_kind(PrincipalKind.ENTERPRISE))]


def actor(principal: Principal) -> str:
    """Who to record as having done something: the person acting, else the principal."""
    return principal.act or principal.sub


def can_see_enterprise(principal: Principal, uscc: str) -> bool:
    """Government and services see every enterprise; an enterprise sees only itself."""
    if principal.kind in (PrincipalKind.GOVERNMENT, PrincipalKind.SERVICE):
        return True
    return principal.kind is PrincipalKind.ENTERPRISE and principal.uscc == uscc


def ensure_enterprise_access(principal: Principal, uscc: str) -> None:
    if not can_see_enterprise(principal, uscc):
        raise Forbidden("You may only see your own enterprise's data")
