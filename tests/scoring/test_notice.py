"""Public notice (公示), objections (异议), corrections and publication, on the scoring service
(issue 12 §2-4): the rules one by one. The same flow through the gateway with credit and
policy is in test_notice_gateway.py; against real processes in tests/reliability."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.platform import Platform
from tests.scoring.notice_support import (
    Clock,
    code,
    cohort_csv,
    import_csv,
    new_run,
    pdf_bytes,
    png_bytes,
)

A, B = code(3), code(4)


@pytest.fixture
async def clock(platform: Platform) -> Clock:
    c = Clock()
    platform.extra["scoring"] = {"clock": c}
    await platform.start("scoring", evidence_max_bytes=4096, evidence_max_files=2)
    return c


def gov(platform: Platform) -> httpx.AsyncClient:
    return platform.client("scoring", "government")


def ent(platform: Platform, uscc: str) -> httpx.AsyncClient:
    return platform.client("scoring", "enterprise", uscc=uscc)


async def published_and_noticed(platform: Platform, clock: Clock) -> tuple[str, str]:
    """The cohort published once, then a second run of it in notice for ten days."""
    async with gov(platform) as g:
        await import_csv(g, cohort_csv())
        published = await new_run(g)
        assert (await g.post(f"/v1/evaluations/{published}/publish")).status_code == 200
        noticed = await new_run(g)
        ends = (clock.now + timedelta(days=10)).isoformat()
        r = await g.post(f"/v1/evaluations/{noticed}/notice", json={"ends_at": ends})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "in_notice"
        assert r.json()["notice_ends_at"].endswith("+08:00")
    return published, noticed


async def object_to(
    c: httpx.AsyncClient, run: str, uscc: str, indicator: str, value: float
) -> httpx.Response:
    return await c.post(
        "/v1/objections",
        json={
            "run_id": run,
            "uscc": uscc,
            "indicator": indicator,
            "claimed_value": value,
            "reason": "我们的有效发明专利数有误，附国家知识产权局证明",
        },
    )


async def _proposed_score_during_notice(a: httpx.AsyncClient, published: str, noticed: str) -> None:
    # During the notice: the proposed score with its sources, the published one unchanged.
    r = await a.get(f"/v1/enterprises/{A}/score", params={"run_id": noticed})
    assert r.status_code == 200, r.text
    proposed = r.json()
    assert proposed["run_status"] == "in_notice"
    patents = next(i for i in proposed["indicators"] if i["code"] == "invention_patents")
    assert patents["value"] == 3 and patents["source"]["kind"] == "import"
    assert patents["source"]["file_name"] == "cohort.csv"
    assert patents["source"]["created_by"] is None  # the staff member: government only
    assert proposed["revenue_source"]["kind"] == "import"
    current = (await a.get(f"/v1/enterprises/{A}/score")).json()
    assert current["run_id"] == published
    # Notices are listed for enterprises, with their own objections counted.
    notices = (await a.get("/v1/notices", params={"state": "open"})).json()
    assert [n["run_id"] for n in notices["items"]] == [noticed]


async def _objections_are_checked(
    a: httpx.AsyncClient, b: httpx.AsyncClient, published: str, noticed: str
) -> tuple[Any, httpx.Response]:
    # Objections: checked, own values only, one open per value.
    assert (await object_to(a, noticed, A, "invention_patents", 3)).status_code == 422
    assert (await object_to(a, noticed, A, "colour", 3)).status_code == 422
    assert (await object_to(a, noticed, A, "rd_platform", 2)).status_code == 422
    assert (await object_to(a, noticed, B, "invention_patents", 30)).status_code == 403
    assert (await object_to(a, published, A, "invention_patents", 30)).status_code == 409
    r = await object_to(a, noticed, A, "invention_patents", 30)
    assert r.status_code == 201, r.text
    objection = r.json()
    assert objection["status"] == "open" and objection["run_value"] == 3
    assert objection["run_source"]["kind"] == "import"
    assert (await object_to(a, noticed, A, "invention_patents", 31)).status_code == 409
    revenue = await object_to(a, noticed, A, "operating_revenue", 700)
    assert revenue.status_code == 201, revenue.text
    # B sees neither A's objection nor its evidence; A sees its own.
    assert (await b.get(f"/v1/objections/{objection['id']}")).status_code == 404
    assert (await b.get("/v1/objections")).json()["total"] == 0
    assert (await b.get("/v1/objections", params={"uscc": A})).status_code == 403
    assert (await a.get("/v1/objections")).json()["total"] == 2
    return objection, revenue


async def _publication_waits_for_notice_and_decisions(
    g: httpx.AsyncClient, b: httpx.AsyncClient, clock: Clock, noticed: str
) -> None:
    # Publishing while the notice runs, or with objections open, is refused.
    r = await g.post(f"/v1/evaluations/{noticed}/publish")
    assert r.status_code == 409 and r.json()["type"].endswith("/notice-running")
    clock.advance(days=11)
    late = await object_to(b, noticed, B, "invention_patents", 30)
    assert late.status_code == 409 and late.json()["type"].endswith("/notice-ended")
    r = await g.post(f"/v1/evaluations/{noticed}/publish")
    assert r.status_code == 409 and r.json()["type"].endswith("/objections-open")
    assert r.json()["open_objections"] == 2


async def _decisions(
    a: httpx.AsyncClient, g: httpx.AsyncClient, objection: Any, revenue: httpx.Response
) -> Any:
    # The decisions: one accepted (a correction), one rejected with a note.
    assert (
        await a.post(
            f"/v1/objections/{objection['id']}/decision",
            json={"decision": "accepted", "note": "证明属实"},
        )
    ).status_code == 403
    r = await g.post(
        f"/v1/objections/{objection['id']}/decision",
        json={"decision": "accepted", "note": "经核实，证明属实"},
    )
    assert r.status_code == 200, r.text
    decided = r.json()
    assert decided["status"] == "accepted" and decided["corrected_value"] == 30
    assert decided["decided_by"] == "test-government"
    correction = decided["correction_source"]
    assert correction["kind"] == "correction"
    assert correction["objection_id"] == objection["id"]
    r = await g.post(
        f"/v1/objections/{revenue.json()['id']}/decision",
        json={"decision": "rejected", "note": "与税务数据一致"},
    )
    assert r.status_code == 200 and r.json()["correction_source"] is None
    again = await g.post(
        f"/v1/objections/{objection['id']}/decision",
        json={"decision": "rejected", "note": "x"},
    )
    assert again.status_code == 409
    return correction


async def _only_a_correcting_run_publishes(
    g: httpx.AsyncClient, noticed: str, stale: str, objection: Any
) -> None:
    # The noticed run cannot be published now: its facts were corrected.
    r = await g.post(f"/v1/evaluations/{noticed}/publish")
    assert r.status_code == 409 and r.json()["type"].endswith("/correction-required")
    r = await g.post(f"/v1/evaluations/{stale}/publish")
    assert r.status_code == 409 and r.json()["objections"] == [objection["id"]]
    # Nor can a run that does not correct it.
    plain = await new_run(g)
    r = await g.post(f"/v1/evaluations/{plain}/publish")
    assert r.status_code == 409 and r.json()["type"].endswith("/period-in-notice")


async def _the_correcting_run_reads_the_correction(
    a: httpx.AsyncClient, b: httpx.AsyncClient, g: httpx.AsyncClient, noticed: str, correction: Any
) -> str:
    # The correcting run reads the corrected fact, with its provenance.
    fixed = await new_run(g, corrects_run_id=noticed)
    score = (await g.get(f"/v1/enterprises/{A}/score", params={"run_id": fixed})).json()
    patents = next(i for i in score["indicators"] if i["code"] == "invention_patents")
    assert patents["value"] == 30 and patents["source"]["id"] == correction["id"]
    assert patents["source"]["created_by"] == "test-government"
    history = await a.get(
        f"/v1/enterprises/{A}/facts/2025/history", params={"indicator": "invention_patents"}
    )
    assert history.status_code == 200, history.text
    h = history.json()
    assert h["value"] == 30 and h["source"]["kind"] == "correction"
    assert [(c["old_value"], c["new_value"]) for c in h["changes"]] == [(3, 30)]
    assert h["changes"][0]["old_source"]["kind"] == "import"
    assert (
        await b.get(f"/v1/enterprises/{A}/facts/2025/history", params={"indicator": "rd_expense"})
    ).status_code == 403
    return fixed


async def _the_comparison_shows_the_effect(g: httpx.AsyncClient, fixed: str, noticed: str) -> None:
    # The comparison with the noticed run shows the effect.
    r = await g.get(
        f"/v1/evaluations/{fixed}/comparison",
        params={"against": noticed, "downstream": False},
    )
    assert r.status_code == 200, r.text
    comparison = r.json()
    assert comparison["basis"] == "given"
    assert A in [m["uscc"] for m in comparison["movers_up"]["items"]]
    mover = next(m for m in comparison["movers_up"]["items"] if m["uscc"] == A)
    assert mover["after"]["total"] > mover["before"]["total"]
    assert comparison["migration"]["count"] == 40


async def _published_without_a_second_notice(
    a: httpx.AsyncClient, g: httpx.AsyncClient, published: str, noticed: str, fixed: str
) -> None:
    # Publication without a second notice; the noticed run is superseded.
    r = await g.post(f"/v1/evaluations/{fixed}/publish")
    assert r.status_code == 200, r.text
    assert r.json()["published_by"] == "test-government"
    assert (await g.get(f"/v1/evaluations/{noticed}")).json()["status"] == "superseded"
    assert (await a.get(f"/v1/enterprises/{A}/score")).json()["run_id"] == fixed
    events = (await g.get("/v1/events")).json()["items"]
    assert [e["payload"]["run_id"] for e in events] == [published, fixed]
    # The objection's page still opens the noticed run for its enterprise.
    r = await a.get(f"/v1/enterprises/{A}/score", params={"run_id": noticed})
    assert r.status_code == 200 and r.json()["run_status"] == "superseded"


async def _everything_audited(a: httpx.AsyncClient, g: httpx.AsyncClient, objection: Any) -> None:
    # Everything was audited: who, and what.
    audit = (
        await g.get(
            "/v1/audit-events",
            params={"subject_type": "objection", "subject_id": objection["id"]},
        )
    ).json()
    assert [e["action"] for e in audit["items"]] == ["objection.decided", "objection.created"]
    assert {e["actor"] for e in audit["items"]} == {A, "test-government"}
    assert (await a.get("/v1/audit-events")).status_code == 403


async def test_notice_objection_correction_and_publication(
    platform: Platform, clock: Clock
) -> None:
    published, noticed = await published_and_noticed(platform, clock)
    async with ent(platform, A) as a, ent(platform, B) as b, gov(platform) as g:
        await _proposed_score_during_notice(a, published, noticed)
        objection, revenue = await _objections_are_checked(a, b, published, noticed)
        await _publication_waits_for_notice_and_decisions(g, b, clock, noticed)
        # A correcting run computed before the decisions misses them.
        stale = await new_run(g, corrects_run_id=noticed)
        correction = await _decisions(a, g, objection, revenue)
        await _only_a_correcting_run_publishes(g, noticed, stale, objection)
        fixed = await _the_correcting_run_reads_the_correction(a, b, g, noticed, correction)
        await _the_comparison_shows_the_effect(g, fixed, noticed)
        await _published_without_a_second_notice(a, g, published, noticed, fixed)
        await _everything_audited(a, g, objection)


async def test_who_may_preview_which_run(platform: Platform, clock: Clock) -> None:
    async with gov(platform) as g:
        await import_csv(g, cohort_csv())
        hidden = await new_run(g)
    async with gov(platform) as g:
        r = await g.get(f"/v1/enterprises/{A}/score", params={"run_id": hidden})
        assert r.status_code == 200 and r.json()["run_status"] == "completed"
        assert len(r.json()["indicators"]) == 24
    async with ent(platform, A) as a:
        # A run never made public does not exist for an enterprise.
        r = await a.get(f"/v1/enterprises/{A}/score", params={"run_id": hidden})
        assert r.status_code == 404
        assert (
            await a.get(f"/v1/enterprises/{B}/score", params={"run_id": hidden})
        ).status_code == 403
    async with platform.client("scoring", "bank", bank_id="icbc-binjiang") as bank:
        for path in (
            f"/v1/enterprises/{A}/score?run_id={hidden}",
            "/v1/notices",
            "/v1/objections",
            f"/v1/enterprises/{A}/facts/2025/history?indicator=rd_expense",
            f"/v1/evaluations/{hidden}/comparison",
        ):
            assert (await bank.get(path)).status_code == 403, path
        r = await object_to(bank, hidden, A, "rd_expense", 1)
        assert r.status_code == 403


async def test_notice_times_and_one_notice_per_period(platform: Platform, clock: Clock) -> None:
    async with gov(platform) as g:
        await import_csv(g, cohort_csv())
        first, second = await new_run(g), await new_run(g)
        past = (clock.now - timedelta(hours=1)).isoformat()
        r = await g.post(f"/v1/evaluations/{first}/notice", json={"ends_at": past})
        assert r.status_code == 422
        # A date is the end of that day in Shanghai; a naive time is Shanghai time.
        day = (clock.now + timedelta(days=5)).date()
        r = await g.post(f"/v1/evaluations/{first}/notice", json={"ends_at": day.isoformat()})
        assert r.status_code == 200, r.text
        ends = r.json()["notice_ends_at"]
        assert ends == f"{(day + timedelta(days=1)).isoformat()}T00:00:00+08:00"
        shorter = f"{day.isoformat()}T12:00:00"
        r = await g.post(f"/v1/evaluations/{first}/notice", json={"ends_at": shorter})
        assert r.status_code == 409
        longer = f"{(day + timedelta(days=2)).isoformat()}T17:30:00"
        r = await g.post(f"/v1/evaluations/{first}/notice", json={"ends_at": longer})
        assert r.status_code == 200 and r.json()["notice_ends_at"].endswith("T17:30:00+08:00")
        r = await g.post(f"/v1/evaluations/{second}/notice", json={"ends_at": longer})
        assert r.status_code == 409 and r.json()["type"].endswith("/period-in-notice")
        far = (clock.now + timedelta(days=400)).isoformat()
        r = await g.post(f"/v1/evaluations/{second}/notice", json={"ends_at": far})
        assert r.status_code == 422
        # Without objections, the noticed run itself publishes once the notice has ended.
        clock.advance(days=9)
        r = await g.post(f"/v1/evaluations/{first}/publish")
        assert r.status_code == 200, r.text
        later = (clock.now + timedelta(days=3)).isoformat()
        r = await g.post(f"/v1/evaluations/{first}/notice", json={"ends_at": later})
        assert r.status_code == 409


async def test_evidence_files(platform: Platform, clock: Clock) -> None:
    _, noticed = await published_and_noticed(platform, clock)
    async with ent(platform, A) as a, ent(platform, B) as b, gov(platform) as g:
        objection = (await object_to(a, noticed, A, "invention_patents", 12)).json()
        url = f"/v1/objections/{objection['id']}/evidence"

        async def send(c: httpx.AsyncClient, name: str, content: bytes, kind: str) -> Any:
            return await c.post(url, files={"file": (name, content, kind)})

        pdf = pdf_bytes()
        r = await send(a, "../../证明.pdf", pdf, "application/pdf")
        assert r.status_code == 201, r.text
        item = r.json()
        assert item["media_type"] == "application/pdf" and item["file_name"] == "证明.pdf"
        assert item["sha256"] == hashlib.sha256(pdf).hexdigest() and item["size"] == len(pdf)
        # Judged by content: a page named .pdf, or a PDF declared as a PNG, is refused.
        html = b"<html><script>alert(1)</script></html>"
        assert (await send(a, "x.pdf", html, "application/pdf")).status_code == 415
        assert (await send(a, "x.png", pdf, "image/png")).status_code == 415
        assert (await send(a, "big.pdf", pdf + b"0" * 5000, "application/pdf")).status_code == 413
        assert (await send(b, "x.png", png_bytes(), "image/png")).status_code == 404
        r = await send(g, "scan.png", png_bytes(), "image/png")  # the government, for A
        assert r.status_code == 201, r.text
        assert (await send(a, "third.pdf", pdf, "application/pdf")).status_code == 413
        # Listed and downloaded by the enterprise and the government only.
        listed = (await a.get(url)).json()
        assert [e["media_type"] for e in listed] == ["application/pdf", "image/png"]
        r = await a.get(f"{url}/{item['id']}")
        assert r.status_code == 200 and r.content == pdf
        assert r.headers["content-type"] == "application/pdf"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["content-disposition"].startswith("attachment;")
        assert (await g.get(f"{url}/{item['id']}")).status_code == 200
        assert (await b.get(f"{url}/{item['id']}")).status_code == 404
        assert (await b.get(url)).status_code == 404
        # A decided objection takes no more evidence.
        await g.post(
            f"/v1/objections/{objection['id']}/decision",
            json={"decision": "rejected", "note": "证明不足"},
        )
        assert (await send(g, "late.pdf", pdf, "application/pdf")).status_code == 409


async def test_a_correction_outranks_a_reimport(platform: Platform, clock: Clock) -> None:
    _, noticed = await published_and_noticed(platform, clock)
    async with ent(platform, A) as a, gov(platform) as g:
        objection = (await object_to(a, noticed, A, "invention_patents", 12)).json()
        await g.post(
            f"/v1/objections/{objection['id']}/decision",
            json={"decision": "accepted", "note": "ok", "corrected_value": 11},
        )
        # The original file again, with one other value changed: the corrected value stays.
        changed = cohort_csv(**{"3": {"rd_expense": 999}})
        record = await import_csv(g, changed)
        assert record["values_kept"] == 1
        assert record["rows_updated"] == 1 and record["rows_unchanged"] == 39
        h = (
            await g.get(
                f"/v1/enterprises/{A}/facts/2025/history",
                params={"indicator": "invention_patents"},
            )
        ).json()
        assert h["value"] == 11 and h["source"]["kind"] == "correction"
        h = (
            await g.get(
                f"/v1/enterprises/{A}/facts/2025/history", params={"indicator": "rd_expense"}
            )
        ).json()
        assert h["value"] == 999 and h["source"]["import_id"] == record["id"]
        assert h["changes"][0]["old_value"] == 61 and h["changes"][0]["new_value"] == 999
        assert h["changes"][0]["source"]["file_sha256"] == record["file_sha256"]
        # The same file once more changes nothing and records no change.
        again = await import_csv(g, changed)
        assert again["rows_unchanged"] == 40 and again["values_kept"] == 1
        h2 = (
            await g.get(
                f"/v1/enterprises/{A}/facts/2025/history", params={"indicator": "rd_expense"}
            )
        ).json()
        assert h2["total"] == 1


async def test_statuses_sources_and_targets_in_the_detail(platform: Platform, clock: Clock) -> None:
    async with gov(platform) as g:
        await import_csv(g, cohort_csv(**{"5": {"revenue_growth": -10}}))
        run = await new_run(g)
        await g.post(f"/v1/evaluations/{run}/publish")
    async with ent(platform, code(5)) as me:
        s = (await me.get(f"/v1/enterprises/{code(5)}/score")).json()
    by_code = {i["code"]: i for i in s["indicators"]}
    # i = 5: no platform (a "no"), no equity data (missing), no award (zero), revenue fell 10%.
    assert (by_code["rd_platform"]["status"], by_code["rd_platform"]["missing"]) == ("no", False)
    assert (by_code["equity_raised"]["status"], by_code["equity_raised"]["missing"]) == (
        "missing",
        True,
    )
    assert by_code["st_awards"]["status"] == "zero" and not by_code["st_awards"]["missing"]
    assert by_code["revenue_growth"]["status"] == "negative"
    assert by_code["rd_expense"]["status"] == "scored"
    assert by_code["st_awards"]["target"] == {
        "reachable": True,
        "reason": None,
        "target_op": "ge",
        "target_value": 1.0,
        "target_percentile": 1.0,
        "boundary": 0.1,
        "points_gain": by_code["st_awards"]["max_points"],
    }
    assert by_code["rd_platform"]["target"]["target_value"] == 1.0
    assert by_code["revenue_growth"]["target"]["target_op"] == "gt"
    assert by_code["tax_grade_a"]["status"] == "missing"  # not in the file at all
    for i in s["indicators"]:
        assert i["source"] is None or i["source"]["kind"] == "import"
        t = i["target"]
        if t["reachable"]:
            assert t["points_gain"] > 0
            assert i["value"] is None or t["target_value"] > i["value"] or t["target_op"] == "gt"
        else:
            assert i["points"] >= i["max_points"] - 1e-9 and t["target_value"] is None
    reasons = {r["code"]: r for r in s["reasons"]}
    for r in reasons.values():
        if r["status"] == "missing":
            assert "No data was provided" in r["explanation"]
        if r["status"] == "zero":
            assert "is zero" in r["explanation"]
    for imp in s["improvements"]:
        assert imp["reachable"] and imp["points_gain"] > 0


async def test_a_programme_may_require_a_notice(platform: Platform) -> None:
    await platform.start("scoring", require_notice=True)
    async with gov(platform) as g:
        await import_csv(g, cohort_csv())
        run = await new_run(g)
        r = await g.post(f"/v1/evaluations/{run}/publish")
        assert r.status_code == 409


async def test_district_is_imported_and_never_a_formula(platform: Platform) -> None:
    await platform.start("scoring")
    async with gov(platform) as g:
        await import_csv(g, cohort_csv())
        e = (await g.get(f"/v1/enterprises/{A}")).json()
        assert e["district"] == "滨江区"
        bad = cohort_csv().decode().replace("滨江区", "=HYPERLINK(1)", 1).encode()
        r = await g.post("/v1/imports", files={"file": ("bad.csv", bad, "text/csv")})
        assert r.status_code == 422
        assert {(e["column"], e["code"]) for e in r.json()["errors"]} == {
            ("district", "unsafe_text")
        }
        long = cohort_csv().decode().replace("滨江区", "区" * 65, 1).encode()
        r = await g.post("/v1/imports", files={"file": ("long.csv", long, "text/csv")})
        assert {e["code"] for e in r.json()["errors"]} == {"too_long"}


async def test_a_comparison_needs_something_to_compare_with(platform: Platform) -> None:
    await platform.start("scoring")
    async with gov(platform) as g:
        await import_csv(g, cohort_csv())
        run = await new_run(g)
        r = await g.get(f"/v1/evaluations/{run}/comparison")
        assert r.status_code == 404 and r.json()["type"].endswith("/no-baseline")
        # Credit and policy are not running: their parts say so, the rest answers.
        other = await new_run(g)
        r = await g.get(f"/v1/evaluations/{run}/comparison", params={"against": other})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["migration"]["stayed"] == body["migration"]["count"]
        assert body["movers_up"]["total"] == body["movers_down"]["total"] == 0
        assert body["credit"]["status"] == "unavailable"
        assert body["policy"]["status"] == "unavailable"
