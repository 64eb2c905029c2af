"""What the scoring domains share: banks read no score here."""

from __future__ import annotations

from shared.auth.principal import Principal, PrincipalKind
from shared.errors import Forbidden


def reject_banks(principal: Principal) -> None:
    # Banks read scores through the credit service, which checks the enterprise's consent.
    if principal.kind is PrincipalKind.BANK:
        raise Forbidden("Banks see scores only through applications the enterprise consented to")
