"""Issue 11: credit's hot reads answered before routing (the offers and approved amounts,
services/credit/lines/hot.py; the applications list, services/credit/applications/hot.py):
the route's very bytes for what the hot path takes, and everything else left to the route."""

from __future__ import annotations

from typing import Any

from services.credit.applications import hot as app_hot
from services.credit.lines import hot
from tests.credit.conftest import HZUB, ICBC, CreditWorld
from tests.hot_scope import get_scope


def _scope(world: CreditWorld, path: str, query: bytes, token: str | None) -> dict[str, Any]:
    scope: dict[str, Any] = get_scope(world.app, path, query, token)
    return scope


# Each query the hot path takes beside one it declines that FastAPI reads the same way.
CASES = [
    (b"", b"via=route"),
    (b"sort=-amount", b"sort=rate&sort=-amount"),
    (b"sort=rate", b"sort=rate&via=route"),
    (b"sort=-rate", b"sort=amount&sort=-rate"),
    (b"sort=amount", b"sort=amount&via=route"),
]


async def test_the_hot_path_answers_with_the_routes_bytes(world: CreditWorld) -> None:
    top = max(await world.eligible(50), key=lambda s: s["percentile"])
    scores = await world.scores()
    excluded = next(s for s in scores if s["exclusion"])
    platform = world.platform
    for uscc, kind in ((top["uscc"], "enterprise"), (excluded["uscc"], "government")):
        token = platform.token(kind, "credit", uscc=uscc if kind == "enterprise" else None)
        path = f"/v1/enterprises/{uscc}/offers"
        client = world.enterprise(uscc) if kind == "enterprise" else world.government()
        async with client as c:
            for fast_query, route_query in CASES:
                assert (
                    await hot.offers(_scope(world, path, route_query, token), {"uscc": uscc})
                    is None
                )
                fast = await c.get(f"{path}?{fast_query.decode()}")
                slow = await c.get(f"{path}?{route_query.decode()}")
                assert fast.status_code == slow.status_code == 200, (fast.text, slow.text)
                assert fast.content == slow.content, (kind, fast_query)
                assert fast.headers["content-type"] == slow.headers["content-type"]
                answer = await hot.offers(_scope(world, path, fast_query, token), {"uscc": uscc})
                assert answer is not None and answer.body == fast.content, fast_query
        body = fast.json()
        assert body["eligible"] is (kind == "enterprise"), body  # both kinds of answer compared


async def test_everything_else_is_left_to_the_route(world: CreditWorld) -> None:
    top = max(await world.eligible(50), key=lambda s: s["percentile"])
    a = top["uscc"]
    platform = world.platform
    gov = platform.token("government", "credit")
    path = f"/v1/enterprises/{a}/offers"
    other = next(s["uscc"] for s in await world.scores() if s["uscc"] != a)
    declined: list[tuple[str, bytes, str | None, str]] = [
        (path, b"", None, a),
        (path, b"", "not-a-token", a),
        (path, b"", platform.token("government", "policy"), a),
        (path, b"", platform.token("enterprise", "credit", uscc=other), a),
        (path, b"sort=nope", gov, a),
        (path, b"sort=", gov, a),
        (path, b"limit=1", gov, a),
        ("/v1/enterprises/NOT-A-CODE/offers", b"", gov, "NOT-A-CODE"),
    ]
    for p, query, token, uscc in declined:
        assert await hot.offers(_scope(world, p, query, token), {"uscc": uscc}) is None, query
    unknown = "91330108MA2J7QL81B"
    scope = _scope(world, f"/v1/enterprises/{unknown}/offers", b"", gov)
    assert await hot.offers(scope, {"uscc": unknown}) is None
    async with world.government() as c:
        r = await c.get(f"/v1/enterprises/{unknown}/offers")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"


async def test_the_bank_reads_answer_with_the_routes_bytes(world: CreditWorld) -> None:
    a, b = await world.eligible(2)
    await world.submit(a["uscc"], ICBC)
    await world.submit(b["uscc"], HZUB)
    platform = world.platform
    icbc = platform.token("bank", "credit", bank_id=ICBC)
    gov = platform.token("government", "credit")
    own = platform.token("enterprise", "credit", uscc=a["uscc"])
    approved = f"/v1/enterprises/{a['uscc']}/approved-amounts"
    # (path, query the hot path takes, one it declines that FastAPI reads the same way)
    cases = [
        (approved, b"", b"via=route"),
        ("/v1/applications", b"", b"via=route"),
        ("/v1/applications", b"limit=1&offset=1", b"limit=2&limit=1&offset=1"),
        ("/v1/applications", b"limit=20", b"limit=20&via=route"),
    ]
    for kind, token, client in (
        ("bank", icbc, world.bank(ICBC)),
        ("government", gov, world.government()),
        ("enterprise", own, world.enterprise(a["uscc"])),
    ):
        async with client as c:
            for path, fast_query, route_query in cases:
                handler = hot.approved_amounts if path == approved else app_hot.list_applications
                params = {"uscc": a["uscc"]} if path == approved else {}
                scope = _scope(world, path, route_query, token)
                assert await handler(scope, params) is None, route_query
                fast = await c.get(f"{path}?{fast_query.decode()}")
                slow = await c.get(f"{path}?{route_query.decode()}")
                assert fast.status_code == slow.status_code == 200, (kind, fast.text, slow.text)
                assert fast.content == slow.content, (kind, path, fast_query)
                answer = await handler(_scope(world, path, fast_query, token), params)
                assert answer is not None and answer.body == fast.content, (kind, path)
                if path == "/v1/applications" and fast_query == b"":
                    seen = {item["uscc"] for item in fast.json()["items"]}
                    # whose applications: the bank its own, the government all, the firm its own
                    expected = {
                        "bank": {a["uscc"]},
                        "government": {a["uscc"], b["uscc"]},
                        "enterprise": {a["uscc"]},
                    }
                    assert seen == expected[kind], (kind, seen)


async def test_the_bank_reads_leave_refusals_to_the_route(world: CreditWorld) -> None:
    a, b = await world.eligible(2)
    await world.submit(a["uscc"], ICBC)
    platform = world.platform
    icbc = platform.token("bank", "credit", bank_id=ICBC)
    hzub = platform.token("bank", "credit", bank_id=HZUB)  # no consent of `a` to it
    other = platform.token("enterprise", "credit", uscc=b["uscc"])
    gov = platform.token("government", "credit")
    path = f"/v1/enterprises/{a['uscc']}/approved-amounts"
    params = {"uscc": a["uscc"]}
    for query, token in [
        (b"", None),
        (b"", "not-a-token"),
        (b"", hzub),
        (b"", other),
        (b"", platform.token("government", "policy")),
        (b"x=1", icbc),
    ]:
        assert await hot.approved_amounts(_scope(world, path, query, token), params) is None
    assert await hot.approved_amounts(_scope(world, path, b"", icbc), params) is not None
    bad = {"uscc": "NOT-A-CODE"}
    assert await hot.approved_amounts(_scope(world, "/x", b"", gov), bad) is None
    for query in (b"status=submitted", b"uscc=" + a["uscc"].encode(), b"limit=0", b"offset=x"):
        scope = _scope(world, "/v1/applications", query, gov)
        assert await app_hot.list_applications(scope, {}) is None, query
    async with world.bank(HZUB) as c:
        r = await c.get(path)
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/problem+json"
