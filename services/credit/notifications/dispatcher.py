"""Delivering the outbox to bank systems as Standard Webhooks (HMAC-SHA256 signed).

Each round claims due messages with FOR UPDATE SKIP LOCKED (replicas never send the same
message at once), posts each to its bank's URL, logs every attempt, and on failure schedules
the next try with capped exponential backoff and jitter. Retries are rows in the database,
not an in-process retry loop, so they survive restarts. A bank receives a message at least
once; `webhook-id` lets it drop duplicates.
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


async def deliver_once(
    session: AsyncSession, http: httpx.AsyncClient, settings: CreditSettings
) -> DeliveryReport:
    banks = list(settings.bank_webhooks)
    if not banks:
        return DeliveryReport(0, 0, 0, 0)
    due = await session.scalars(
        select(OutboxMessage)
        .where(
            OutboxMessage.delivered_at.is_(None),
            OutboxMessage.failed_at.is_(None),
            OutboxMessage.next_attempt_at <= func.now(),
            OutboxMessage.bank_id.in_(banks),
        )
        .order_by(OutboxMessage.id)
        .limit(settings.outbox_batch)
        .with_for_update(skip_locked=True)
    )
    delivered = failed = gave_up = attempted = 0
    for message in list(due):
        attempted += 1
        started = time.perf_counter()
        status, error, url = await _send(http, settings, message)
        message.attempts += 1
        session.add(
            WebhookDelivery(
                message_id=message.id,
                bank_id=message.bank_id,
                attempt=message.attempts,
                url=url,
                status_code=status,
                error=error,
                duration_ms=int((time.perf_counter() - started) * 1000),
            )
        )
        now = datetime.now(UTC)
        if error is None:
            message.delivered_at = now
            message.last_error = None
            delivered += 1
            continue
        failed += 1
        message.last_error = error
        if message.attempts >= settings.webhook_max_attempts:
            message.failed_at = now
            gave_up += 1
            log.warning("webhook gave up", message_id=message.id, bank_id=message.bank_id)
        else:
            message.next_attempt_at = now + timedelta(seconds=backoff(message.attempts, settings))
    await session.flush()
    return DeliveryReport(attempted, delivered, failed, gave_up)


async def deliver_outbox(app: FastAPI) -> DeliveryReport:
    """One delivery round in its own transaction; the background loop and tests call it."""
    settings: CreditSettings = app.state.settings
    maker: async_sessionmaker[AsyncSession] = app.state.sessionmaker
    async with maker() as session, session.begin():
        report = await deliver_once(session, app.state.http, settings)
        backlog = await session.scalar(
            select(func.count()).where(
                OutboxMessage.delivered_at.is_(None),
                OutboxMessage.failed_at.is_(None),
                OutboxMessage.bank_id.in_(list(settings.bank_webhooks)),
            )
        )
    OUTBOX_BACKLOG.labels("credit").set(backlog or 0)
    return report
