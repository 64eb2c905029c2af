"""What the scoring domains share: the enterprise a caller may see."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path

from shared.auth.deps import CurrentPrincipal, ensure_enterprise_access
from shared.auth.principal import Principal, PrincipalKind
from shared.errors import Forbidden

USCCPath = Annotated[str, Path(min_length=18, max_length=18, pattern=r"^[0-9A-HJ-NPQRTUWXY]{18}$")]


def reject_banks(principal: Principal) -> None:
    # Banks read scores through the credit service, which checks the enterprise's consent.
    if principal.kind is PrincipalKind.BANK:
        raise Forbidden("Banks see scores only through applications the enterprise consented to")


async def _visible_uscc(uscc: USCCPath, principal: CurrentPrincipal) -> str:
    reject_banks(principal)
    ensure_enterprise_access(principal, uscc)
    return uscc


VisibleUSCC = Annotated[str, Depends(_visible_uscc)]
"""An enterprise the caller may see: itself, or any for the government and services."""
