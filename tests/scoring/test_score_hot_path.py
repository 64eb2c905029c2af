"""Issue 11: `GET /v1/enterprises/{uscc}/score` answered before routing (scores/hot.py).

The hot path answers the plain case with the route's very bytes, and leaves everything
else (every refusal, every preview, every row it cannot show, every failure) to the route,
which answers as it always did.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from scripts.bench_gateway import code
from services.scoring.evaluations.service import published_run
from services.scoring.scores import hot, service
from shared.connections import Connections
from shared.errors import NotFound
from tests.hot_scope import get_scope
from tests.platform import Platform
from tests.scoring_fixtures import demo, evaluate_and_publish, import_period

N = 60
SEED = 5
# A query parameter the hot path does not take (and the route ignores): the route answers.
Query = dict[str, str | int]
ROUTE: Query = {"period": 2025, "via": "route"}


@pytest.fixture
async def published(platform: Platform) -> Platform:
    await platform.start("scoring")
    await import_period(platform, N, SEED, 2025)
    await evaluate_and_publish(platform, 2025)
    return platform


def _scored(platform: Platform) -> list[str]:
    data = demo(N, SEED)
    flags = data.periods[2025].profile["negative_flags"]
    revenue = data.periods[2025].revenue
    return [
        str(u)
        for u, f, r in zip(data.uscc, flags, revenue, strict=True)
        if not f and not math.isnan(r)
    ]


def _scope(platform: Platform, path: str, query: bytes = b"", token: str | None = None) -> Any:
    return get_scope(platform.fastapi["scoring"], path, query, token)


async def test_the_hot_path_answers_with_the_routes_bytes(published: Platform) -> None:
    a, b = _scored(published)[:2]
    for kind, uscc in (("government", b), ("enterprise", a)):
        async with published.client("scoring", kind, uscc=a if kind == "enterprise" else None) as c:
            queries: list[Query] = [{}, {"period": 2025}]
            for query in queries:
                fast = await c.get(f"/v1/enterprises/{uscc}/score", params=query)
                slow = await c.get(f"/v1/enterprises/{uscc}/score", params=ROUTE)
                assert fast.status_code == slow.status_code == 200, (fast.text, slow.text)
                assert fast.content == slow.content, kind
                for header in ("content-type", "content-length"):
                    assert fast.headers[header] == slow.headers[header], header
                assert len(fast.headers["x-request-id"]) == 32
        # The answer above was the hot path's own: the handler answers this request itself.
        token = published.token(kind, "scoring", uscc=a if kind == "enterprise" else None)
        response = await hot.published_score(
            _scope(published, f"/v1/enterprises/{uscc}/score", token=token), {"uscc": uscc}
        )
        assert response is not None and response.body == fast.content
    async with published.client("scoring", "government") as gov:
        r = await gov.get(f"/v1/enterprises/{a}/score", headers={"X-Request-ID": "hot-12345678"})
        assert r.headers["x-request-id"] == "hot-12345678"


async def test_everything_else_is_left_to_the_route(published: Platform) -> None:
    a, b = _scored(published)[:2]
    path = f"/v1/enterprises/{a}/score"
    gov = published.token("government", "scoring")
    own = published.token("enterprise", "scoring", uscc=a)
    other = published.token("enterprise", "scoring", uscc=b)
    bank = published.token("bank", "scoring", bank_id="icbc-binjiang")
    wrong_audience = published.token("government", "credit")
    unknown = code(999_999)  # a valid code of no enterprise here
    assert unknown not in map(str, demo(N, SEED).uscc)
    declined: list[tuple[str, bytes, str | None, str]] = [
        (path, b"", None, a),
        (path, b"", "not-a-token", a),
        (path, b"", wrong_audience, a),
        (path, b"", other, a),
        (path, b"", bank, a),
        ("/v1/enterprises/NOT-A-CODE/score", b"", gov, "NOT-A-CODE"),
        (path, b"period=1999", gov, a),
        (path, b"period=2025&via=route", gov, a),
        (path, f"run_id={uuid.uuid4()}".encode(), gov, a),
        (path, b"period=", gov, a),
        ("/v1/enterprises/x/score", b"", gov, "9" * 33),
    ]
    for p, query, token, uscc in declined:
        scope = _scope(published, p, query, token)
        assert await hot.published_score(scope, {"uscc": uscc}) is None, (query, token)
        assert hot.SCORE_READ_MISSED not in scope["state"]
    scope = _scope(published, f"/v1/enterprises/{unknown}/score", token=own)
    assert await hot.published_score(scope, {"uscc": unknown}) is None
    scope = _scope(published, f"/v1/enterprises/{unknown}/score", token=gov)
    assert await hot.published_score(scope, {"uscc": unknown}) is None
    assert scope["state"][hot.SCORE_READ_MISSED] is True
    scope = _scope(published, path, b"period=2024", gov)  # no published run of 2024
    assert await hot.published_score(scope, {"uscc": a}) is None
    assert scope["state"][hot.SCORE_READ_MISSED] is True

    # What the route answers in those cases: its own problems, as before.
    async with published.client("scoring") as anon:
        r = await anon.get(path)
        assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
    async with published.client("scoring", "enterprise", uscc=b) as c:
        assert (await c.get(path)).status_code == 403
    async with published.client("scoring", "government") as c:
        assert (await c.get("/v1/enterprises/NOT-A-CODE/score")).status_code == 422
        assert (await c.get(path, params={"period": 1999})).status_code == 422
        r = await c.get(f"/v1/enterprises/{unknown}/score")
        assert r.status_code == 404
        assert r.headers["content-type"] == "application/problem+json"
        r = await c.get(path, params={"period": 2024})
        assert r.status_code == 404 and r.json()["status"] == 404


async def test_a_failed_read_is_answered_by_the_route(published: Platform) -> None:
    """The database unreachable on the read path: the route raises what the hot path met,
    and the problem handlers answer it as they answer the route's own failure."""
    a = _scored(published)[0]
    reader = published.fastapi["scoring"].state.score_reader
    working = reader.connections
    reader.connections = Connections("postgresql://postgres@127.0.0.1:1/nowhere", 2)
    try:
        async with published.client("scoring", "government") as gov:
            fast = await gov.get(f"/v1/enterprises/{a}/score")
            slow = await gov.get(f"/v1/enterprises/{a}/score", params=ROUTE)
    finally:
        await reader.connections.close()
        reader.connections = working
    assert fast.status_code == slow.status_code == 503, (fast.text, slow.text)
    assert fast.headers["content-type"] == "application/problem+json"
    assert fast.headers["retry-after"] == slow.headers["retry-after"] == "1"
    body, expected = fast.json(), slow.json()
    assert body.pop("request_id") != expected.pop("request_id")
    assert body == expected
    async with published.client("scoring", "government") as gov:
        assert (await gov.get(f"/v1/enterprises/{a}/score")).status_code == 200


async def test_the_portrait_from_the_stored_score_is_the_computed_one(published: Platform) -> None:
    """The portrait reads the published score the way the score read does; it is the
    portrait computed from the ORM rows and `build_score`, for every enterprise."""
    state = published.fastapi["scoring"].state
    async with published.client("scoring", "government") as gov:
        for uscc in map(str, demo(N, SEED).uscc):
            r = await gov.get(f"/v1/enterprises/{uscc}/portrait")
            async with state.sessionmaker() as session:
                run = await published_run(session, None)
                try:
                    score, stats, ent = await service.load_score(
                        session, state.specs, state.runs, uscc, run
                    )
                except NotFound:
                    assert r.status_code == 404, r.text
                    continue
                expected = service.portrait(score, stats, await service.history(session, ent))
            assert r.status_code == 200, r.text
            assert r.json() == expected.model_dump(mode="json"), uscc
        r = await gov.get(f"/v1/enterprises/{_scored(published)[0]}/portrait?period=2024")
        assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"


async def test_the_hot_path_is_traced_as_the_route(platform: Platform) -> None:
    exporter = InMemorySpanExporter()
    platform.extra["scoring"] = {"span_exporter": exporter}
    await platform.start("scoring")
    await import_period(platform, N, SEED, 2025)
    await evaluate_and_publish(platform, 2025)
    a = _scored(platform)[0]
    names = []
    async with platform.client("scoring", "government") as gov:
        queries: list[Query] = [{}, ROUTE]
        for query in queries:
            exporter.clear()
            assert (await gov.get(f"/v1/enterprises/{a}/score", params=query)).status_code == 200
            names.append(
                [s.name for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER]
            )
    assert names[0] == names[1] and len(names[0]) == 1, names
