"""Delivering the outbox to bank systems as Standard Webhooks (HMAC-SHA256 signed).

Each round claims due messages with FOR UPDATE SKIP LOCKED and leases them (replicas never
send the same message at once, and a process that dies mid-send leaves them due again once
the lease runs out), posts each to its bank's URL with no transaction open, logs every
attempt, and on failure schedules the next try with capped exponential backoff and jitter.
Retries are rows in the database, not an in-process retry loop, so they survive restarts.
A bank receives a message at least once; `webhook-id` lets it drop duplicates.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import structlog
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks import Webhook

from services.credit.models import OutboxMessage, WebhookDelivery
from services.credit.settings import CreditSettings, WebhookTarget
from shared.metrics import OUTBOX_BACKLOG

log = structlog.get_logger("credit.webhooks")


@dataclass(frozen=True)
class DeliveryReport:
    attempted: int
    delivered: int
    failed: int
    gave_up: int


def envelope(message: OutboxMessage) -> dict[str, Any]:
    return {
        "id": message_id(message.id),
        "type": message.type,
        "bank_id": message.bank_id,
        "created_at": message.created_at.isoformat(),
        "data": message.payload,
    }


def message_id(outbox_id: int) -> str:
    return f"msg_credit_{outbox_id}"


def signed_request(
    target: WebhookTarget, msg_id: str, body: str, now: datetime
) -> tuple[str, dict[str, str]]:
    signature = Webhook(target.secret.get_secret_value()).sign(msg_id, now, body)
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    return target.url, headers


def backoff(attempt: int, settings: CreditSettings) -> float:
    wait: float = settings.webhook_backoff_base * 2.0 ** (attempt - 1)
    return min(settings.webhook_backoff_cap, wait) * (1 + random.uniform(0, 0.2))


async def _send(
    http: httpx.AsyncClient, settings: CreditSettings, message: OutboxMessage
) -> tuple[int | None, str | None, str]:
    target = settings.bank_webhooks[message.bank_id]
    body = json.dumps(envelope(message), ensure_ascii=False, separators=(",", ":"))
    url, headers = signed_request(target, message_id(message.id), body, datetime.now(UTC))
    try:
        resp = await http.post(
            url, content=body.encode(), headers=headers, timeout=settings.webhook_timeout
        )
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"[:500], url
    if 200 <= resp.status_code < 300:
        return resp.status_code, None, url
    return resp.status_code, f"HTTP {resp.status_code}: {resp.text[:200]}", url


# A claimed message is leased for this long past the send timeout: if the process dies while
# posting, the message becomes due again and another round (or replica) retries it.
LEASE_MARGIN = timedelta(seconds=30)


async def _claim(session: AsyncSession, settings: CreditSettings) -> list[OutboxMessage]:
    """Take due messages for this round and lease them, in one short transaction."""
    due = list(
        await session.scalars(
            select(OutboxMessage)
            .where(
                OutboxMessage.delivered_at.is_(None),
                OutboxMessage.failed_at.is_(None),
                OutboxMessage.next_attempt_at <= func.now(),
                OutboxMessage.bank_id.in_(list(settings.bank_webhooks)),
            )
            .order_by(OutboxMessage.id)
            .limit(settings.outbox_batch)
            .with_for_update(skip_locked=True)
        )
    )
    lease_until = datetime.now(UTC) + timedelta(seconds=settings.webhook_timeout) + LEASE_MARGIN
    for message in due:
        message.next_attempt_at = lease_until
    await session.flush()
    return due


async def deliver_once(
    maker: async_sessionmaker[AsyncSession], http: httpx.AsyncClient, settings: CreditSettings
) -> DeliveryReport:
    """Claim (short transaction), post with no transaction open, record (short transaction).

    Posting inside the claiming transaction would hold row locks and a pooled connection for
    as long as the slowest bank takes to answer.
    """
    if not settings.bank_webhooks:
        return DeliveryReport(0, 0, 0, 0)
    async with maker() as session, session.begin():
        claimed = await _claim(session, settings)
        session.expunge_all()
    results = []
    for message in claimed:
        started = time.perf_counter()
        status, error, url = await _send(http, settings, message)
        results.append((message.id, status, error, url, time.perf_counter() - started))

    delivered = failed = gave_up = 0
    async with maker() as session, session.begin():
        for message_pk, status, error, url, seconds in results:
            row = await session.get(OutboxMessage, message_pk, with_for_update=True)
            assert row is not None
            row.attempts += 1
            session.add(
                WebhookDelivery(
                    message_id=row.id,
                    bank_id=row.bank_id,
                    attempt=row.attempts,
                    url=url,
                    status_code=status,
                    error=error,
                    duration_ms=int(seconds * 1000),
                )
            )
            now = datetime.now(UTC)
            if error is None:
                row.delivered_at = now
                row.last_error = None
                delivered += 1
                continue
            failed += 1
            row.last_error = error
            if row.attempts >= settings.webhook_max_attempts:
                row.failed_at = now
                gave_up += 1
                log.warning("webhook gave up", message_id=row.id, bank_id=row.bank_id)
            else:
                row.next_attempt_at = now + timedelta(seconds=backoff(row.attempts, settings))
        await session.flush()
    return DeliveryReport(len(results), delivered, failed, gave_up)


async def deliver_outbox(app: FastAPI) -> DeliveryReport:
    """One delivery round; the background loop and tests call it."""
    settings: CreditSettings = app.state.settings
    maker: async_sessionmaker[AsyncSession] = app.state.sessionmaker
    report = await deliver_once(maker, app.state.http, settings)
    async with maker() as session:
        backlog = await session.scalar(
            select(func.count()).where(
                OutboxMessage.delivered_at.is_(None),
                OutboxMessage.failed_at.is_(None),
                OutboxMessage.bank_id.in_(list(settings.bank_webhooks)),
            )
        )
    OUTBOX_BACKLOG.labels("credit").set(backlog or 0)
    return report
