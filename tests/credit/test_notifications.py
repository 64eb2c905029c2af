"""Signed webhooks to bank systems: verified by a receiver, retried, logged; and the feed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from services.credit.notifications.dispatcher import backoff
from tests.credit.conftest import HZUB, ICBC, SECRETS, CreditWorld


async def _apply(world: CreditWorld, uscc: str, bank: str = ICBC) -> dict[str, Any]:
    return await world.submit(uscc, bank)


def _inbox(world: CreditWorld, bank: str) -> Any:
    return world.platform.apps["bank-sim"].state.inboxes[bank]


async def _make_due(world: CreditWorld) -> None:
    async with world.app.state.engine.begin() as conn:
        await conn.execute(text("UPDATE credit.outbox SET next_attempt_at = now()"))


async def test_new_application_reaches_the_bank_signed_once(world: CreditWorld) -> None:
    e = (await world.eligible())[0]
    app = await _apply(world, e["uscc"])
    report = await world.deliver()
    assert (report.attempted, report.delivered) == (1, 1)
    inbox = _inbox(world, ICBC)
    assert inbox.rejected == 0
    [event] = inbox.received
    assert event["type"] == "application.submitted"
    assert event["data"]["application"]["id"] == app["id"]
    assert _inbox(world, HZUB).received == []
    # Delivered messages are not sent again.
    assert (await world.deliver()).attempted == 0
    async with world.bank(ICBC) as bank:
        log = (await bank.get("/v1/webhook-deliveries")).json()
    assert log["total"] == 1 and log["items"][0]["status_code"] == 204


async def test_failures_are_retried_with_backoff_and_logged(world: CreditWorld) -> None:
    e = (await world.eligible())[0]
    _inbox(world, ICBC).fail_next = 2
    await _apply(world, e["uscc"])
    first = await world.deliver()
    assert (first.attempted, first.failed) == (1, 1)
    # Not due yet: the backoff holds it back.
    assert (await world.deliver()).attempted == 0
    await _make_due(world)
    assert (await world.deliver()).failed == 1
    await _make_due(world)
    assert (await world.deliver()).delivered == 1
    assert len(_inbox(world, ICBC).received) == 1
    async with world.bank(ICBC) as bank:
        log = (await bank.get("/v1/webhook-deliveries")).json()["items"]
    assert [(d["attempt"], d["status_code"]) for d in log] == [(3, 204), (2, 503), (1, 503)]
    assert "503" in log[-1]["error"]


async def test_wrong_secret_is_refused_by_the_bank_and_given_up_after_max_attempts(
    world: CreditWorld,
) -> None:
    platform = world.platform
    await platform.stop("credit")
    await platform.start(
        "credit",
        sync_interval=0,
        outbox_interval=0,
        webhook_max_attempts=2,
        bank_webhooks={ICBC: {"url": f"http://bank-sim/webhooks/{ICBC}", "secret": SECRETS[HZUB]}},
    )
    e = (await world.eligible())[0]
    await _apply(world, e["uscc"])
    assert (await world.deliver()).failed == 1
    await _make_due(world)
    assert (await world.deliver()).gave_up == 1
    assert _inbox(world, ICBC).rejected == 2
    assert _inbox(world, ICBC).received == []
    await _make_due(world)
    assert (await world.deliver()).attempted == 0
    # Still in the pull feed: nothing is lost for a bank that reads it.
    async with world.bank(ICBC) as bank:
        feed = (await bank.get("/v1/feed")).json()
    assert [i["type"] for i in feed["items"]] == ["application.submitted"]


async def test_unreachable_bank_is_retried(world: CreditWorld) -> None:
    e = (await world.eligible())[0]
    sim = world.platform.apps.pop("bank-sim")
    await _apply(world, e["uscc"])
    report = await world.deliver()
    assert report.failed == 1
    world.platform.apps["bank-sim"] = sim
    await _make_due(world)
    assert (await world.deliver()).delivered == 1
    async with world.government() as gov:
        log = (await gov.get("/v1/webhook-deliveries")).json()["items"]
    assert log[-1]["status_code"] is None and "ConnectError" in log[-1]["error"]


async def test_pull_feed_pages_by_cursor_and_is_per_bank(world: CreditWorld) -> None:
    firms = await world.eligible(3)
    ids = [(await _apply(world, f["uscc"]))["id"] for f in firms]
    await _apply(world, firms[0]["uscc"], HZUB)
    async with world.enterprise(firms[0]["uscc"]) as c:
        await c.post(f"/v1/applications/{ids[0]}/withdraw")
    async with world.bank(ICBC) as bank:
        page1 = (await bank.get("/v1/feed", params={"limit": 2})).json()
        page2 = (await bank.get("/v1/feed", params={"after": page1["next_after"]})).json()
        empty = (await bank.get("/v1/feed", params={"after": page2["next_after"]})).json()
    items = page1["items"] + page2["items"]
    assert [i["type"] for i in items] == ["application.submitted"] * 3 + ["application.withdrawn"]
    assert [i["data"]["application"]["id"] for i in items] == [*ids, ids[0]]
    assert {i["bank_id"] for i in items} == {ICBC}
    assert empty["items"] == [] and empty["next_after"] == page2["next_after"]


def test_backoff_grows_and_is_capped() -> None:
    from services.credit.settings import CreditSettings

    s = CreditSettings(webhook_backoff_base=2, webhook_backoff_cap=60, database_url="x")
    waits = [backoff(n, s) for n in range(1, 10)]
    assert 2 <= waits[0] <= 2.4 and 4 <= waits[1] <= 4.8
    assert all(w <= 72 for w in waits) and waits[-1] >= 60


async def test_a_delivery_interrupted_mid_send_is_retried_after_its_lease(
    world: CreditWorld,
) -> None:
    from services.credit.notifications.dispatcher import _claim

    e = (await world.eligible())[0]
    await _apply(world, e["uscc"])
    # A round claims the message, then its process dies before recording anything.
    async with world.app.state.sessionmaker() as session, session.begin():
        claimed = await _claim(session, world.app.state.settings)
    assert len(claimed) == 1
    # Leased: no other round (or replica) sends it meanwhile.
    assert (await world.deliver()).attempted == 0
    # Once the lease has run out, it is due again and delivered.
    await _make_due(world)
    report = await world.deliver()
    assert (report.attempted, report.delivered) == (1, 1)
    assert len(_inbox(world, ICBC).received) == 1
