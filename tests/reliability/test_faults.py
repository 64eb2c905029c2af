"""Faults under load: a service stopped, the event feed's producer stopped while its consumers
wait, and the database restarted. Every test restores the platform before it ends."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from scripts.assembled import Assembled
from tests.reliability.conftest import PROBLEM, Principals, wait_healthy
from tests.reliability.load import Call, Load, Sample, summary

PRODUCT_X = "6f1c3a52-6a43-5a0e-9a4e-1c2b3d4e5f01"
# Upper bound for a 503 from a stopped service, a failed database call or any answer at
# all: generous for a noisy 2-core machine, far below a hang.
FAST = 1.0
NO_HANG = 6.0


@pytest.fixture(scope="module")
def crowd(assembled: Assembled) -> list[tuple[str, str]]:
    """Logged-in enterprises (USCC, access token) beyond the three of the security tests."""
    usccs = assembled.scored_enterprises(20)[3:]
    return [(u, assembled.enterprise_token(u)) for u in usccs]


@pytest.fixture
async def restored(assembled: Assembled, principals: Principals) -> AsyncIterator[None]:
    yield
    # Whatever a failed assertion left behind, the next test gets a whole platform.
    if not assembled.postgres_running():
        await asyncio.to_thread(assembled.start_postgres)
    for name in ("scoring", "credit", "policy"):
        if name not in assembled.launcher.procs:
            await asyncio.to_thread(assembled.launcher.start, name)
    await asyncio.to_thread(wait_healthy, assembled, principals.government)


def mix(principals: Principals, crowd: list[tuple[str, str]]) -> list[Call]:
    calls = []
    for uscc, token in crowd[:4]:
        calls += [
            Call("gateway:dashboard", "/v1/me/dashboard", token),
            Call("scoring:score", f"/v1/scoring/enterprises/{uscc}/score", token),
            Call("credit:offers", f"/v1/credit/enterprises/{uscc}/offers", token),
            Call("policy:matches", f"/v1/policy/enterprises/{uscc}/matches", token),
        ]
    gov = principals.government
    calls += [
        Call("scoring:rankings", "/v1/scoring/rankings?stage=growth&period=2025", gov),
        Call("credit:applications", "/v1/credit/applications?limit=5", principals.bank_x),
        Call("policy:pools", "/v1/policy/pools", gov),
    ]
    return calls


async def published_events(c: httpx.AsyncClient) -> int:
    r = await c.get("/v1/scoring/events", params={"type": "evaluation.published", "limit": 500})
    assert r.status_code == 200, r.text
    return len(r.json()["items"])


async def counts(c: httpx.AsyncClient) -> dict[str, int]:
    applications = await c.get("/v1/credit/applications", params={"limit": 1})
    imports = await c.get("/v1/scoring/imports", params={"limit": 1})
    for r in (applications, imports):
        assert r.status_code == 200, r.text
    return {
        "applications": applications.json()["total"],
        "imports": imports.json()["total"],
        "published": await published_events(c),
    }


async def apply(c: httpx.AsyncClient, token: str, key: str) -> httpx.Response:
    return await c.post(
        "/v1/credit/applications",
        json={"product_id": PRODUCT_X, "amount": 100_000},
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
    )


def assert_fast_problems(samples: list[Sample], statuses: tuple[int, ...], limit: float) -> None:
    assert samples, "the load sent nothing in this window"
    for s in samples:
        assert s.status in statuses, (s, summary(samples))
        assert s.content_type.startswith(PROBLEM), s
        assert s.seconds < limit, (s.name, s.seconds)


def assert_all_ok(samples: list[Sample]) -> None:
    assert samples, "the load sent nothing in this window"
    bad = [s for s in samples if s.status != 200]
    assert not bad, summary(bad)


def assert_credit_away_answers(refused: list[httpx.Response], dash: httpx.Response) -> None:
    """While credit is away: its calls are problems at once, the dashboard says which part."""
    for r in refused:
        assert r.status_code == 503, r.text
        assert r.headers["content-type"] == PROBLEM
    assert dash.status_code == 200, dash.text
    parts = dash.json()
    assert parts["offers"]["status"] == "unavailable", parts["offers"]
    assert parts["score"]["status"] == "ok", parts["score"]
    assert parts["matches"]["status"] == "ok", parts["matches"]


def assert_load_through_the_outage(load: Load, times: tuple[float, float, float, float]) -> None:
    """The background load: fast problems from credit only, everything else answered, nothing
    hung; all well again once credit is healthy."""
    down, stopped, up, healthy = times
    outage = load.between(stopped, up)
    assert_fast_problems([s for s in outage if s.name.startswith("credit:")], (503,), FAST)
    others = [s for s in outage if s.name.split(":")[0] in ("scoring", "policy")]
    assert_all_ok(others)
    dashboards = [s for s in outage if s.name == "gateway:dashboard"]
    assert dashboards
    for s in dashboards:
        assert s.status == 200, s
        assert s.body["offers"]["status"] == "unavailable", s.body
        assert s.body["score"]["status"] == "ok", s.body
    assert_all_ok(load.between(healthy, time.monotonic()))
    assert all(s.seconds < NO_HANG and s.status for s in load.samples), summary(load.samples)
    assert load.between(0, down), "no load before the fault"


async def test_stopped_service_is_503_fast_and_loses_nothing(
    assembled: Assembled, principals: Principals, crowd: list[tuple[str, str]], restored: None
) -> None:
    launcher = assembled.launcher
    gov = {"Authorization": f"Bearer {principals.government}"}
    applicants = crowd[4:16]
    keys = {uscc: f"fault-{uuid.uuid4()}" for uscc, _ in applicants}
    async with httpx.AsyncClient(base_url=assembled.gateway, headers=gov, timeout=30) as c:
        before = await counts(c)
        async with Load(assembled.gateway, mix(principals, crowd)) as load:
            await asyncio.sleep(1.5)
            for uscc, token in applicants[:6]:
                r = await apply(c, token, keys[uscc])
                assert r.status_code == 201, r.text

            down = time.monotonic()
            await asyncio.to_thread(launcher.stop, "credit")
            stopped = time.monotonic()
            refused: list[httpx.Response] = []
            for uscc, token in applicants[6:]:
                started = time.monotonic()
                r = await apply(c, token, keys[uscc])
                assert time.monotonic() - started < FAST
                refused.append(r)
            # The other services go on: an import while credit is away is kept.
            csv = (assembled.var / "demo" / "facts-2025.csv").read_bytes()
            r = await c.post("/v1/scoring/imports", files={"file": ("f.csv", csv, "text/csv")})
            assert r.status_code == 201, r.text
            _, token = crowd[0]
            dash = await c.get("/v1/me/dashboard", headers={"Authorization": f"Bearer {token}"})
            await asyncio.sleep(2.5)

            up = time.monotonic()
            await asyncio.to_thread(launcher.start, "credit")
            await asyncio.to_thread(wait_healthy, assembled, principals.government)
            healthy = time.monotonic()
            # The callers that got 503 try again with their keys; two of the first ones too,
            # as a client does that never saw its answer.
            retried = [await apply(c, t, keys[u]) for u, t in applicants[6:]]
            replayed = [await apply(c, t, keys[u]) for u, t in applicants[:2]]
            await asyncio.sleep(1.5)
        after = await counts(c)
        mine = [
            (await c.get("/v1/credit/applications", params={"uscc": u})).json()["total"]
            for u, _ in applicants
        ]

    assert_credit_away_answers(refused, dash)
    assert_load_through_the_outage(load, (down, stopped, up, healthy))
    assert [r.status_code for r in retried] == [201] * len(retried), [r.text for r in retried]
    assert all(r.headers.get("idempotent-replayed") == "true" for r in replayed)
    assert after["applications"] == before["applications"] + len(applicants)
    assert mine == [1] * len(applicants)
    assert after["imports"] == before["imports"] + 1
    assert after["published"] == before["published"]


async def _current_runs(c: httpx.AsyncClient, uscc: str) -> tuple[Any, Any]:
    credit = await c.get("/v1/credit/stats")
    matches = await c.get(f"/v1/policy/enterprises/{uscc}/matches")
    credit_run = credit.json()["evaluation"]["run_id"] if credit.status_code == 200 else None
    policy_run = matches.json()["run_id"] if matches.status_code == 200 else None
    return credit_run, policy_run


async def test_consumers_catch_up_from_their_cursors(
    assembled: Assembled, principals: Principals, crowd: list[tuple[str, str]], restored: None
) -> None:
    launcher = assembled.launcher
    gov = {"Authorization": f"Bearer {principals.government}"}
    uscc = crowd[0][0]
    async with httpx.AsyncClient(base_url=assembled.gateway, headers=gov, timeout=60) as c:
        before = await counts(c)
        pools_before = (await c.get("/v1/policy/pools")).json()["items"]
        for name in ("credit", "policy"):
            await asyncio.to_thread(launcher.stop, name)
        # A new evaluation of the same facts is published while both consumers are away.
        r = await c.post("/v1/scoring/evaluations", json={"period": 2025, "wait": True})
        assert r.status_code == 201, r.text
        run = r.json()
        r = await c.post(f"/v1/scoring/evaluations/{run['id']}/publish")
        assert r.status_code == 200, r.text
        published = await published_events(c)
        # Then the producer goes away too, and the consumers come back to an empty feed.
        await asyncio.to_thread(launcher.stop, "scoring")
        for name in ("credit", "policy"):
            await asyncio.to_thread(launcher.start, name)
        async with Load(assembled.gateway, mix(principals, crowd)) as load:
            await asyncio.sleep(3)  # a few failed polls at the 1 s interval
            assert await _current_runs(c, uscc) != (run["id"], run["id"])
            restarted = time.monotonic()
            await asyncio.to_thread(launcher.start, "scoring")
            deadline = time.monotonic() + 60
            while await _current_runs(c, uscc) != (run["id"], run["id"]):
                assert time.monotonic() < deadline, await _current_runs(c, uscc)
                await asyncio.sleep(0.5)
            caught_up = time.monotonic()
            await asyncio.sleep(1.5)
        stats = (await c.get("/v1/credit/stats")).json()
        pools_after = (await c.get("/v1/policy/pools")).json()["items"]
        after = await counts(c)

    print(f"consumers caught up {caught_up - restarted:.1f} s after scoring restarted")
    assert published == before["published"] + 1
    # Nothing produced by catching up, nothing lost.
    assert after == {**before, "published": published}
    assert stats["evaluation"]["run_id"] == run["id"]
    assert stats["coverage"]["scored_enterprises"] == run["scored_count"]

    # The same facts again: every pool has exactly the members and reserve it had.
    def pool_counts(pools: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
        return {p["code"]: (p["members"], p["reserve"]) for p in pools}

    assert pool_counts(pools_after) == pool_counts(pools_before)
    # While scoring was away its routes were 503 and the rest served; reads of credit and
    # policy while they caught up never failed (no lock trouble with the sync).
    for s in load.between(0, restarted):
        if s.name.startswith("scoring:"):
            assert s.status == 503, s
        elif s.name.startswith(("credit:", "policy:")):
            assert s.status == 200, s
    assert_all_ok([s for s in load.samples if s.name.startswith(("credit:", "policy:"))])
    assert all(s.seconds < NO_HANG and s.status for s in load.samples), summary(load.samples)


async def test_database_restart_under_load_recovers_by_itself(
    assembled: Assembled, principals: Principals, crowd: list[tuple[str, str]], restored: None
) -> None:
    launcher = assembled.launcher
    pids = {name: proc.pid for name, proc in launcher.procs.items()}
    async with Load(assembled.gateway, mix(principals, crowd)) as load:
        await asyncio.sleep(1.5)
        down = time.monotonic()
        await asyncio.to_thread(assembled.stop_postgres)
        stopped = time.monotonic()
        async with httpx.AsyncClient(timeout=10) as probe:
            readiness = {
                n: (await probe.get(launcher.url(n) + "/readyz")).status_code
                for n in ("gateway", "scoring", "credit", "policy")
            }
        await asyncio.sleep(3)
        up = time.monotonic()
        await asyncio.to_thread(assembled.start_postgres)
        # No service is restarted: each must find the database again on its own.
        deadline = time.monotonic() + 45
        async with httpx.AsyncClient(timeout=5) as probe:
            for name in ("gateway", "scoring", "credit", "policy"):
                while (await probe.get(launcher.url(name) + "/readyz")).status_code != 200:
                    assert time.monotonic() < deadline, f"{name} did not become ready"
                    await asyncio.sleep(0.5)
        ready = time.monotonic()
        await asyncio.to_thread(wait_healthy, assembled, principals.government)
        healthy = time.monotonic()
        await asyncio.sleep(2)

    print(
        f"database down {up - down:.1f} s; services ready {ready - up:.1f} s and healthy "
        f"through the gateway {healthy - up:.1f} s after it came back"
    )
    assert readiness == {"gateway": 503, "scoring": 503, "credit": 503, "policy": 503}
    outage = load.between(stopped, up)
    failed = [s for s in outage if s.status != 200]
    assert failed, summary(outage)  # the outage was felt...
    for s in failed:  # ...as quick 5xx problems, never a hang
        assert 500 <= s.status < 600, s
        assert s.content_type.startswith(PROBLEM), s
        assert s.seconds < NO_HANG, s
    assert all(s.seconds < NO_HANG and s.status for s in load.samples), summary(load.samples)
    assert_all_ok(load.between(healthy, time.monotonic()))
    assert {name: proc.pid for name, proc in launcher.procs.items()} == pids
    assert not launcher.exited()
