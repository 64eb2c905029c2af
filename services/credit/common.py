"""What every credit domain shares: its problem types, USCC checks, raw COPY access."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path
from sqlalchemy.ext.asyncio import AsyncSession
from stdnum.cn import uscc as uscc_format

from shared.auth.principal import Principal, PrincipalKind
from shared.errors import TYPE_BASE, Conflict, Forbidden, NotFound, Unprocessable


class InvalidUscc(Unprocessable):
    slug = "invalid-uscc"
    title = "Not a valid unified social credit code"


class UnknownEnterprise(NotFound):
    slug = "unknown-enterprise"
    title = "Enterprise not in the published evaluation"


class NoPublishedEvaluation(Conflict):
    slug = "no-published-evaluation"
    title = "No published evaluation yet"


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


def checked_uscc(value: str) -> str:
    code = value.strip().upper()
    if not uscc_format.is_valid(code):
        raise InvalidUscc(f"{value!r} fails the GB 32100-2015 format or check digit")
    return code


UsccPath = Annotated[str, Path(min_length=1, max_length=32, description="统一社会信用代码")]


def actor(principal: Principal) -> str:
    return principal.act or principal.sub


def bank_of(principal: Principal) -> str:
    if principal.kind is not PrincipalKind.BANK or principal.bank_id is None:
        raise Forbidden("This needs a bank principal")
    return principal.bank_id


async def raw_connection(session: AsyncSession) -> Any:
    """The asyncpg connection under the session's transaction (for COPY)."""
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    return raw.driver_connection
