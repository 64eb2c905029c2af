"""FastAPI dependencies: who is calling, and may they.

Every service authorises on its own: the gateway's checks are a first line, never the only
one. Identity comes only from a verified internal token; headers such as `X-User` or
`X-USCC` are never read.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.auth.principal import Principal, PrincipalKind
from shared.auth.tokens import TokenVerifier
from shared.errors import Forbidden, Unauthorized
from shared.identifiers import UsccPath, checked_uscc

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


# Named for who is calling: `Bank` and `Enterprise` are also ORM classes (credit's bank,
# scoring's enterprise), and a handler that needs both should not have to alias one.
GovernmentCaller = Annotated[Principal, Depends(require_kind(PrincipalKind.GOVERNMENT))]
GovernmentOrServiceCaller = Annotated[
    Principal, Depends(require_kind(PrincipalKind.GOVERNMENT, PrincipalKind.SERVICE))
]
BankCaller = Annotated[Principal, Depends(require_kind(PrincipalKind.BANK))]
EnterpriseCaller = Annotated[Principal, Depends(require_kind(PrincipalKind.ENTERPRISE))]


def actor(principal: Principal) -> str:
    """Who to record as having done something: the person acting, else the principal."""
    return principal.act or principal.sub


def can_see_enterprise(principal: Principal, uscc: str) -> bool:
    """Government and services see every enterprise; an enterprise sees only itself."""
    if principal.kind in (PrincipalKind.GOVERNMENT, PrincipalKind.SERVICE):
        return True
    return principal.kind is PrincipalKind.ENTERPRISE and principal.uscc == uscc


def ensure_enterprise_access(principal: Principal, uscc: str) -> None:
    if can_see_enterprise(principal, uscc):
        return
    if principal.kind is PrincipalKind.BANK:
        # Banks read an enterprise through the credit service, which checks its consent.
        raise Forbidden("Banks see an enterprise's data only through applications it consented to")
    raise Forbidden("You may only see your own enterprise's data")


# The enterprise named in the path: every service takes it through one of these, never by
# hand. The caller is authenticated first (an anonymous caller learns nothing, not even
# whether the code is valid), then the code is checked (422 `invalid-uscc`), then access.


async def _checked_uscc(_: CurrentPrincipal, uscc: UsccPath) -> str:
    return checked_uscc(uscc)


CheckedUSCC = Annotated[str, Depends(_checked_uscc)]
"""A valid code in canonical form, access not yet checked: the base of a service's own rule
(credit lets a bank read an enterprise that consented to it)."""


async def _visible_uscc(principal: CurrentPrincipal, uscc: CheckedUSCC) -> str:
    ensure_enterprise_access(principal, uscc)
    return uscc


VisibleUSCC = Annotated[str, Depends(_visible_uscc)]
"""An enterprise the caller may see: itself, or any for the government and services."""


async def _own_uscc(principal: EnterpriseCaller, uscc: CheckedUSCC) -> str:
    if principal.uscc != uscc:
        raise Forbidden("Only the enterprise itself may do this")
    return uscc


OwnUSCC = Annotated[str, Depends(_own_uscc)]
"""The calling enterprise's own code: for what only the enterprise itself does."""


async def _uscc_filter(
    uscc: Annotated[str | None, Query(max_length=32, description="统一社会信用代码")] = None,
) -> str | None:
    return checked_uscc(uscc) if uscc is not None else None


USCCFilter = Annotated[str | None, Depends(_uscc_filter)]
"""An optional `uscc` query filter, checked; what the caller may see is the listing's rule."""
