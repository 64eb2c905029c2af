"""What the policy service's domains share: problem types, USCC checks, raw COPY access."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path
from sqlalchemy.ext.asyncio import AsyncSession
from stdnum.cn import uscc as uscc_format

from shared.auth.principal import Principal
from shared.errors import Conflict, NotFound, Unprocessable


class InvalidUscc(Unprocessable):
    slug = "invalid-uscc"
    title = "Not a valid unified social credit code"


class UnknownEnterprise(NotFound):
    slug = "unknown-enterprise"
    title = "Enterprise not in the published evaluation"


class NoPublishedEvaluation(Conflict):
    slug = "no-published-evaluation"
    title = "No published evaluation received yet"


class InvalidRule(Unprocessable):
    """The criteria cannot be published (or tried): every problem is listed in `problems`."""

    slug = "invalid-rule"
    title = "The eligibility criteria are not valid"


def checked_uscc(value: str) -> str:
    code = value.strip().upper()
    if not uscc_format.is_valid(code):
        raise InvalidUscc(f"{value!r} fails the GB 32100-2015 format or check digit")
    return code


UsccPath = Annotated[str, Path(min_length=1, max_length=32, description="统一社会信用代码")]


def actor(principal: Principal) -> str:
    return principal.act or principal.sub


async def raw_connection(session: AsyncSession) -> Any:
    """The asyncpg connection under the session's transaction (for COPY)."""
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    return raw.driver_connection
