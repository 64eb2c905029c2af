"""What every credit domain shares: its problem types, raw COPY access."""

from __future__ import annotations

from typing import Any

from shared.auth.deps import actor
from shared.auth.principal import Principal, PrincipalKind
from shared.db import raw_connection
from shared.errors import TYPE_BASE, Forbidden, Unprocessable
from shared.problems import NoPublishedEvaluation, UnknownEnterprise


class BusinessRuleViolation(Unprocessable):
    """422 with a type per rule, so a client can tell each refusal apart."""

    def __init__(self, slug: str, title: str, detail: str, **extensions: Any) -> None:
        super().__init__(detail, **extensions)
        self._slug = slug
        self._title = title

    @property
    def type_uri(self) -> str:
        return TYPE_BASE + self._slug

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body = super().body(instance)
        body["title"] = self._title
        return body


def bank_of(principal: Principal) -> str:
    if principal.kind is not PrincipalKind.BANK or principal.bank_id is None:
        raise Forbidden("This needs a bank principal")
    return principal.bank_id


__all__ = [
    "BusinessRuleViolation",
    "NoPublishedEvaluation",
    "UnknownEnterprise",
    "actor",
    "bank_of",
    "raw_connection",
]
