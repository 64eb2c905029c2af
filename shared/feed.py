"""Reading another service's event feed from a cursor of one's own.

The producer keeps an outbox feed (`GET /v1/events?after=<id>`); each consumer stores how far
it has read in its own schema and moves the cursor in the same transaction as the work an
event caused, so an event is applied exactly once even across restarts and replicas (the row
lock serialises them).

`FeedConsumer` is that loop, written once: a service names its cursor table, the feed and a
handler for one event; the lock, the paging, the cursor and the lag metric are the same for
every consumer.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeAlias, TypeVar

import httpx
from sqlalchemy import BigInteger, DateTime, String, func, select, text
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from shared.errors import ServiceUnavailable, UpstreamError
from shared.metrics import FEED_LAG
from shared.service_client import ServiceClient


class ConsumerCursorMixin:
    """Columns of a service's `consumer_cursors` table (one row per feed it reads)."""

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


async def lock_cursor(session: AsyncSession, model: Any, name: str) -> int:
    """The cursor's position, locked until the transaction ends (created at 0 if new)."""
    await session.execute(insert(model).values(name=name, position=0).on_conflict_do_nothing())
    stmt = select(model).where(model.name == name).with_for_update()
    position: int = (await session.scalars(stmt)).one().position
    return position


async def advance_cursor(session: AsyncSession, model: Any, name: str, position: int) -> None:
    cursor = await session.get(model, name)
    assert cursor is not None, "lock_cursor first"
    cursor.position = position
    cursor.updated_at = datetime.now(UTC)


@dataclass
class FeedReport:
    """What one catch-up did: events read, what they brought in, where the cursor stands."""

    events: int = 0
    # Ids of what the handler took in (a published evaluation's run id).
    imported: list[str] = field(default_factory=list)
    # Events read that changed nothing (another type, already applied, an older period).
    skipped: int = 0
    cursor: int = 0


R = TypeVar("R", bound=FeedReport)

# Applies one event inside the transaction that will move the cursor past it; may call the
# producer back (to page through what the event announces) and counts into the report.
EventHandler: TypeAlias = Callable[
    [AsyncSession, ServiceClient, Mapping[str, Any], R], Awaitable[None]
]


def payload_of(
    event: Mapping[str, Any], event_type: str, report: FeedReport
) -> Mapping[str, Any] | None:
    """The payload of an event of `event_type`; None, counted as skipped, for any other."""
    if event.get("type") != event_type:
        report.skipped += 1
        return None
    payload: Mapping[str, Any] = event.get("payload") or {}
    return payload


def feed_lag(position: int, latest: int, caught_up: bool) -> int:
    """The `event_feed_lag` value: event ids between the consumer's cursor and the producer's
    newest event, 0 once a read finds nothing more for the consumer.

    Ids, not a count: a rolled-back publication leaves a gap in the producer's sequence, and a
    consumer reading one event type also "lags" by the other types until its next read comes
    back empty. It is the same measure for every consumer, so one alert threshold fits all.
    """
    return 0 if caught_up else max(0, latest - position)


@dataclass(frozen=True)
class FeedConsumer(Generic[R]):
    """One service following one producer's feed.

    `catch_up` repeats, each round in its own transaction: take the consumer's advisory lock
    (so one replica works and the others return at once instead of queueing on the cursor
    row), lock the cursor, read a page after it, apply its first event through `apply`,
    move the cursor past it, commit. One event per transaction keeps a failed event (an
    unreachable producer while paging its scores) from undoing the events before it.
    """

    cursors: type[ConsumerCursorMixin]  # the consuming service's `consumer_cursors` model
    feed: str  # the cursor's name, and the metric's `feed` label: "scoring.events"
    apply: EventHandler[R]
    event_type: str | None = None  # ask the producer for this type only
    path: str = "/v1/events"

    @property
    def consumer(self) -> str:
        """The consuming service: the schema its cursor table lives in."""
        return str(sa_inspect(self.cursors).local_table.schema)

    @property
    def lock_key(self) -> int:
        """The advisory-lock key, derived alike for every consumer from what it consumes.

        Keys are database-wide while the services share a server, so the consuming schema is
        part of it: credit and policy reading the same feed never wait on each other.
        """
        return zlib.crc32(f"feed:{self.consumer}:{self.feed}".encode())

    async def catch_up(
        self,
        sessions: async_sessionmaker[AsyncSession],
        producer: ServiceClient,
        batch: int,
        report: R,
    ) -> R:
        """Apply every event after the cursor, each in its own transaction."""
        params: dict[str, Any] = {"limit": batch}
        if self.event_type is not None:
            params["type"] = self.event_type
        lag = FEED_LAG.labels(self.consumer, self.feed)
        while True:
            async with sessions() as session, session.begin():
                locked = await session.scalar(
                    text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": self.lock_key}
                )
                if not locked:
                    return report
                position = await lock_cursor(session, self.cursors, self.feed)
                page = await producer.get(self.path, {**params, "after": position})
                events: list[Mapping[str, Any]] = page.get("items") or []
                latest = int(page.get("latest", events[-1]["id"] if events else position))
                lag.set(feed_lag(position, latest, caught_up=not events))
                if not events:
                    report.cursor = position
                    return report
                event = events[0]
                await self.apply(session, producer, event, report)
                await advance_cursor(session, self.cursors, self.feed, int(event["id"]))
                report.events += 1
                report.cursor = int(event["id"])


# A run's export is one long body: the read timeout bounds the wait for each chunk (the first
# one comes once PostgreSQL has sorted the run), never the whole body.
EXPORT_TIMEOUT = httpx.Timeout(30.0, read=300.0)


@dataclass
class Export:
    """An export's body as it arrives, and the row count the producer announced."""

    total: int | None
    header: list[str]
    label: str
    _body: AsyncIterator[bytes]  # the response's one byte iterator, past `_first`
    _first: bytes = b""

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body from its first byte (header line included); a cut body or a stalled
        producer is an `UpstreamError`."""
        if self._first:
            yield self._first
        try:
            async for chunk in self._body:
                yield chunk
        except httpx.HTTPError as exc:
            raise UpstreamError(f"{self.label}: {type(exc).__name__}: {exc}") from exc

    def check(self, rows: int) -> None:
        """Refuse a body with another number of rows than announced."""
        if self.total is not None and rows != self.total:
            raise UpstreamError(f"{self.label}: {rows} rows read, {self.total} announced")


async def _first_line(body: AsyncIterator[bytes], label: str) -> bytes:
    buf = b""
    while b"\n" not in buf and len(buf) <= 1 << 16:
        chunk = await anext(body, None)
        if chunk is None:
            break
        buf += chunk
    if b"\n" not in buf:
        raise UpstreamError(f"{label}: no header line")
    return buf


@asynccontextmanager
async def open_export(
    client: ServiceClient, path: str, params: dict[str, Any] | None = None
) -> AsyncIterator[Export]:
    """A CSV export of another service, streamed (`Export.chunks`) rather than read whole.

    Any failure (unreachable, a problem answer, a timeout between chunks) is an
    `UpstreamError`, as `ServiceClient.get` does, so the event's transaction rolls back.
    """
    if client.tokens is None:
        raise ServiceUnavailable(f"No token source configured for calling {client.audience}")
    label = f"{client.audience} {path}"
    token = await client.tokens.token(client.audience)
    request = client.http.build_request(
        "GET",
        client.base_url + path,
        params=params,
        headers={"Authorization": f"Bearer {token}", "Accept-Encoding": "identity"},
        timeout=EXPORT_TIMEOUT,
    )
    try:
        response = await client.http.send(request, stream=True)
    except httpx.HTTPError as exc:
        raise UpstreamError(f"{label}: {type(exc).__name__}: {exc}") from exc
    try:
        if response.status_code != 200:
            await response.aread()
            raise UpstreamError(f"{label}: {response.status_code}: {response.text[:500]}")
        try:
            body = response.aiter_bytes()
            first = await _first_line(body, label)
        except httpx.HTTPError as exc:
            raise UpstreamError(f"{label}: {type(exc).__name__}: {exc}") from exc
        total = response.headers.get("X-Total-Count")
        header = first.split(b"\n", 1)[0].decode().strip().split(",")
        yield Export(int(total) if total and total.isdigit() else None, header, label, body, first)
    finally:
        await response.aclose()
