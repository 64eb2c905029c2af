"""The shared feed consumer, against the real scoring feed and a real cursor table: events
applied once, in order, one transaction each; one replica at a time; one lag measure."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.credit.evaluations.sync import FEED as CREDIT_FEED
from services.credit.models import ConsumerCursor
from services.policy.matching.sync import FEED as POLICY_FEED
from shared.feed import FeedConsumer, FeedReport, feed_lag
from shared.service_client import ServiceClient
from tests.platform import Platform
from tests.scoring_fixtures import evaluate_and_publish, import_period, publish_demo

FEED = "test.events"


@pytest.fixture
async def consumer_app(platform: Platform) -> FastAPI:
    """Scoring with three publications in its feed; credit's app for its database and tokens."""
    await publish_demo(platform, n=120, period=2024)
    await import_period(platform, 120, 1, 2025)
    await evaluate_and_publish(platform, 2025)
    await evaluate_and_publish(platform, 2025)
    await platform.start("credit", sync_interval=0, outbox_interval=0)
    return platform.fastapi["credit"]


async def _feed_ids(platform: Platform) -> list[int]:
    async with platform.client("scoring", "government") as gov:
        r = await gov.get("/v1/events", params={"limit": 500})
    assert r.status_code == 200, r.text
    return [int(e["id"]) for e in r.json()["items"]]


def _lag() -> float | None:
    return REGISTRY.get_sample_value("event_feed_lag", {"component": "credit", "feed": FEED})


async def _cursors(app: FastAPI) -> dict[str, int]:
    async with app.state.sessionmaker() as session:
        rows = await session.execute(select(ConsumerCursor.name, ConsumerCursor.position))
        return {name: position for name, position in rows}


class Recorder:
    """A handler that writes a row per event (in the event's transaction) and can fail."""

    def __init__(self, fail_on: int | None = None, tag: str = "applied") -> None:
        self.tag = tag
        self.seen: list[tuple[int, float | None]] = []
        self.fail_on = fail_on

    async def __call__(
        self,
        session: AsyncSession,
        producer: ServiceClient,
        event: Mapping[str, Any],
        report: FeedReport,
    ) -> None:
        event_id = int(event["id"])
        self.seen.append((event_id, _lag()))
        session.add(ConsumerCursor(name=f"{self.tag}-{event_id}", position=event_id))
        await session.flush()
        if event_id == self.fail_on:
            raise RuntimeError("the handler failed")
        report.imported.append(str(event_id))


def _consumer(handler: Recorder) -> FeedConsumer[FeedReport]:
    return FeedConsumer(ConsumerCursor, FEED, handler)


def _producer(app: FastAPI) -> ServiceClient:
    return ServiceClient(app, "scoring", "http://scoring")


async def test_each_event_once_in_order_with_the_lag_before_it(
    platform: Platform, consumer_app: FastAPI
) -> None:
    ids = await _feed_ids(platform)
    assert len(ids) == 3
    handler = Recorder()
    consumer = _consumer(handler)
    # A page of one: the consumer must page through the feed, not stop after the first read.
    report = await consumer.catch_up(
        consumer_app.state.sessionmaker, _producer(consumer_app), 1, FeedReport()
    )
    assert [event_id for event_id, _ in handler.seen] == ids
    assert report.events == 3 and report.imported == [str(i) for i in ids]
    assert report.cursor == ids[-1]
    # Before each event the lag was the ids between the cursor and the newest event.
    positions = [0, *ids[:-1]]
    assert [lag for _, lag in handler.seen] == [ids[-1] - p for p in positions]
    assert _lag() == 0
    cursors = await _cursors(consumer_app)
    assert cursors[FEED] == ids[-1]
    assert {f"applied-{i}" for i in ids} <= cursors.keys()
    # Caught up: nothing is applied twice.
    again = await consumer.catch_up(
        consumer_app.state.sessionmaker, _producer(consumer_app), 100, FeedReport()
    )
    assert again.events == 0 and again.cursor == ids[-1]
    assert len(handler.seen) == 3


async def test_a_failed_event_leaves_the_ones_before_it_applied(
    platform: Platform, consumer_app: FastAPI
) -> None:
    ids = await _feed_ids(platform)
    handler = Recorder(fail_on=ids[1])
    consumer = _consumer(handler)
    with pytest.raises(RuntimeError, match="handler failed"):
        await consumer.catch_up(
            consumer_app.state.sessionmaker, _producer(consumer_app), 100, FeedReport()
        )
    cursors = await _cursors(consumer_app)
    assert cursors[FEED] == ids[0]
    assert f"applied-{ids[0]}" in cursors
    # The failed event's writes went with its transaction; it is retried next time.
    assert f"applied-{ids[1]}" not in cursors
    handler.fail_on = None
    report = await consumer.catch_up(
        consumer_app.state.sessionmaker, _producer(consumer_app), 100, FeedReport()
    )
    assert report.imported == [str(i) for i in ids[1:]]
    assert _lag() == 0


async def test_one_replica_at_a_time_the_others_return_at_once(
    platform: Platform, consumer_app: FastAPI
) -> None:
    handler = Recorder()
    consumer = _consumer(handler)
    # Another replica is in the middle of a round: it holds the consumer's lock.
    async with consumer_app.state.engine.connect() as other:
        await other.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": consumer.lock_key})
        report = await asyncio.wait_for(
            consumer.catch_up(
                consumer_app.state.sessionmaker, _producer(consumer_app), 100, FeedReport()
            ),
            timeout=10,
        )
        assert report.events == 0 and handler.seen == []
        # Another consumer of the same feed is not held up by it.
        other_consumer = FeedConsumer(ConsumerCursor, "test.other", Recorder(tag="other"))
        assert other_consumer.lock_key != consumer.lock_key
        done = await other_consumer.catch_up(
            consumer_app.state.sessionmaker, _producer(consumer_app), 100, FeedReport()
        )
        assert done.events == 3
        await other.rollback()
    report = await consumer.catch_up(
        consumer_app.state.sessionmaker, _producer(consumer_app), 100, FeedReport()
    )
    assert report.events == 3


def test_every_consumer_derives_its_lock_and_labels_alike() -> None:
    assert (CREDIT_FEED.consumer, CREDIT_FEED.feed) == ("credit", "scoring.events")
    assert (POLICY_FEED.consumer, POLICY_FEED.feed) == ("policy", "scoring.events")
    # The same feed read by two services: two locks, so neither waits for the other.
    assert CREDIT_FEED.lock_key != POLICY_FEED.lock_key
    # Derived from what is consumed, not chosen per service: credit's cursor table and feed
    # name give credit's key, whoever builds the consumer.
    assert (
        CREDIT_FEED.lock_key == FeedConsumer(ConsumerCursor, "scoring.events", Recorder()).lock_key
    )


def test_lag_is_ids_behind_the_newest_and_zero_when_caught_up() -> None:
    assert feed_lag(position=3, latest=10, caught_up=False) == 7
    assert feed_lag(position=10, latest=10, caught_up=False) == 0
    # A consumer of one event type that found nothing more has caught up, whatever the ids.
    assert feed_lag(position=3, latest=10, caught_up=True) == 0
