"""Issue 11: the dashboard's policy reads (matches, pushes) answered before routing
(services/policy/enterprises/hot.py): the route's very bytes for what the hot path takes,
and everything else left to the route."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event, text

from services.policy.enterprises import hot
from tests.hot_scope import get_scope
from tests.policy.conftest import PolicyWorld


async def _usccs(world: PolicyWorld, n: int) -> list[str]:
    async with world.app.state.sessionmaker() as session:
        rows = await session.execute(
            text("SELECT uscc FROM policy.enterprise_facts ORDER BY uscc LIMIT :n"), {"n": n}
        )
        return [r[0] for r in rows]


def _scope(world: PolicyWorld, path: str, query: bytes, token: str | None) -> dict[str, Any]:
    scope: dict[str, Any] = get_scope(world.app, path, query, token)
    return scope


# Each hot query beside one the hot path declines and FastAPI reads the same way (a repeated
# parameter FastAPI takes the last of; a boolean spelled as only FastAPI accepts it).
MATCHES = [
    (b"", b"other=1"),
    (
        b"kind=pool&status=eligible&status=near",
        b"kind=policy&kind=pool&status=eligible&status=near",
    ),
    (b"status=ineligible", b"status=ineligible&via=route"),
    (b"kind=policy", b"kind=pool&kind=policy"),
]
PUSHES = [
    (b"", b"unread=False"),
    (b"unread=true", b"unread=True"),
    (b"unread=true&limit=1&offset=0", b"unread=1&limit=1&offset=0"),
    (b"limit=2&offset=1", b"unread=off&limit=2&offset=1"),
]


@pytest.mark.parametrize("part", ["matches", "pushes"])
async def test_the_hot_path_answers_with_the_routes_bytes(world: PolicyWorld, part: str) -> None:
    handler = hot.matches if part == "matches" else hot.pushes
    cases = MATCHES if part == "matches" else PUSHES
    a, b = await _usccs(world, 2)
    clients = [(world.enterprise(a), a, "enterprise"), (world.government(), b, "government")]
    for client, uscc, kind in clients:
        token = world.platform.token(kind, "policy", uscc=uscc if kind == "enterprise" else None)
        path = f"/v1/enterprises/{uscc}/{part}"
        async with client as c:
            for fast_query, route_query in cases:
                scope = _scope(world, path, route_query, token)
                assert await handler(scope, {"uscc": uscc}) is None, route_query  # declined
                fast = await c.get(f"{path}?{fast_query.decode()}")
                slow = await c.get(f"{path}?{route_query.decode()}")
                assert fast.status_code == slow.status_code == 200, (fast.text, slow.text)
                assert fast.content == slow.content, (kind, fast_query)
                assert fast.headers["content-type"] == slow.headers["content-type"]
                # ...and the fast answer was the hot path's own.
                answer = await handler(_scope(world, path, fast_query, token), {"uscc": uscc})
                assert answer is not None and answer.body == fast.content, fast_query
        if part == "matches":
            assert fast.json()["items"], "the comparison saw no match at all"


async def test_everything_else_is_left_to_the_route(world: PolicyWorld) -> None:
    a, b = await _usccs(world, 2)
    platform = world.platform
    own = platform.token("enterprise", "policy", uscc=a)
    gov = platform.token("government", "policy")
    declined: list[tuple[str, bytes, str | None, str]] = [
        (f"/v1/enterprises/{a}/matches", b"", None, a),  # no token
        (f"/v1/enterprises/{a}/matches", b"", "not-a-token", a),
        (f"/v1/enterprises/{a}/matches", b"", platform.token("government", "credit"), a),
        (f"/v1/enterprises/{b}/matches", b"", own, b),  # someone else's
        (f"/v1/enterprises/{a}/pushes", b"", platform.token("bank", "policy", bank_id="x"), a),
        ("/v1/enterprises/NOT-A-CODE/matches", b"", gov, "NOT-A-CODE"),
        ("/v1/enterprises/x/matches", b"", gov, "9" * 33),
        (f"/v1/enterprises/{a}/matches", b"status=nope", gov, a),
        (f"/v1/enterprises/{a}/matches", b"status=", gov, a),
        (f"/v1/enterprises/{a}/matches", b"other=1", gov, a),
        (f"/v1/enterprises/{a}/pushes", b"limit=0", gov, a),
        (f"/v1/enterprises/{a}/pushes", b"limit=501", gov, a),
        (f"/v1/enterprises/{a}/pushes", b"offset=-1", gov, a),
        (f"/v1/enterprises/{a}/pushes", b"limit=%EF%BC%91", gov, a),  # a full-width 1
        (f"/v1/enterprises/{a}/pushes", b"unread=yes", gov, a),
        (f"/v1/enterprises/{a}/pushes", b"limit=1&limit=2", gov, a),
    ]
    for path, query, token, uscc in declined:
        handler = hot.matches if path.endswith("matches") else hot.pushes
        assert await handler(_scope(world, path, query, token), {"uscc": uscc}) is None, (
            path,
            query,
        )
    # A problem the service raises (an enterprise not in the evaluation) is the route's.
    unknown = "91330108MA2J7QL81B"
    scope = _scope(world, f"/v1/enterprises/{unknown}/matches", b"", gov)
    assert await hot.matches(scope, {"uscc": unknown}) is None
    async with world.government() as c:
        r = await c.get(f"/v1/enterprises/{unknown}/matches")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"


async def test_a_remembered_answer_never_outlives_what_it_was_made_of(world: PolicyWorld) -> None:
    """The hot matches keep recent answers' bytes by what they were read from: a title edited,
    a rule edited in place (no recompute yet) and a recompute are each seen at once, and the
    answer is always the route's."""
    (uscc,) = await _usccs(world, 1)
    path = f"/v1/enterprises/{uscc}/matches"
    token = world.platform.token("government", "policy")

    async def both() -> tuple[bytes | None, bytes]:
        answer = await hot.matches(_scope(world, path, b"kind=pool", token), {"uscc": uscc})
        async with world.government() as c:
            slow = await c.get(f"{path}?kind=pool&via=route")  # declined by the hot path
        assert slow.status_code == 200, slow.text
        return (None if answer is None else bytes(answer.body)), slow.content

    first, route = await both()
    assert first == route and first is not None
    again, _ = await both()
    assert again == first  # remembered: the same bytes
    async with world.app.state.sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE policy.pools SET name_zh = name_zh || '（新）' WHERE code = 'hnte'")
        )
    renamed, route = await both()
    assert renamed == route and renamed is not None and "（新）".encode() in renamed
    # A rule edited in place: the stored status was matched with the old rule, which the
    # route explains until the recompute; the hot path leaves that to it.
    async with world.app.state.sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "UPDATE policy.pools SET rule = jsonb_set(rule, '{root,id}', '\"edited\"') "
                "WHERE code = 'hnte'"
            )
        )
    edited, route = await both()
    assert edited is None and "（新）".encode() in route


async def test_reads_keep_their_connections_through_bursts(world: PolicyWorld) -> None:
    """A burst of reads above the read pool's size waits for kept connections: none is
    opened for one request and closed after (each was a PostgreSQL backend started)."""
    opened: list[int] = []
    pool = world.app.state.read_engine.sync_engine.pool

    def connected(*_: Any) -> None:
        opened.append(1)

    event.listen(pool, "connect", connected)
    a, b = await _usccs(world, 2)
    try:
        async with world.government() as c:
            for burst in range(3):
                before = len(opened)
                # `via`: declined by the hot path, so the route reads on the read engine.
                answers = await asyncio.gather(
                    *(c.get(f"/v1/enterprises/{(a, b)[i % 2]}/pushes?via=route") for i in range(40))
                )
                assert [r.status_code for r in answers] == [200] * 40
                if burst:
                    assert len(opened) == before, "a read opened a connection of its own"
            assert pool.checkedout() == 0 and 0 < pool.checkedin() <= pool.size()
    finally:
        event.remove(pool, "connect", connected)
