"""What the scoring domains share: banks read no score here, Shanghai time, bounded uploads."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import UploadFile
from pydantic import AfterValidator

from shared.auth.principal import Principal, PrincipalKind
from shared.errors import Forbidden, PayloadTooLarge


def reject_banks(principal: Principal) -> None:
    # Banks read scores through the credit service, which checks the enterprise's consent.
    if principal.kind is PrincipalKind.BANK:
        raise Forbidden("Banks see scores only through applications the enterprise consented to")


SHANGHAI = ZoneInfo("Asia/Shanghai")


def in_shanghai(value: datetime) -> datetime:
    """A time as the programme states it (Asia/Shanghai): a naive time is read as one, an
    aware one converted. Stored as timestamptz, so the database keeps the instant."""
    if value.tzinfo is None:
        return value.replace(tzinfo=SHANGHAI)
    try:
        return value.astimezone(SHANGHAI)
    except OverflowError as exc:  # year 9999 at -14:00 is past the last representable day
        raise ValueError("the time is out of range") from exc


ShanghaiTime = Annotated[datetime, AfterValidator(in_shanghai)]
"""A datetime read and written in Asia/Shanghai (+08:00)."""


async def read_limited(file: UploadFile, limit: int, what: str) -> bytes:
    """An upload read a MiB at a time, refused (413) as soon as it passes `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await file.read(1024 * 1024):
        size += len(chunk)
        if size > limit:
            shown = f"{limit // (1024 * 1024)} MiB" if limit >= 1024 * 1024 else f"{limit} bytes"
            raise PayloadTooLarge(f"{what} are limited to {shown}")
        chunks.append(chunk)
    return b"".join(chunks)
