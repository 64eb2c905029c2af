"""The CSV export of a run's scores (credit and policy import a published run from it): the
same rows and values as the paged endpoint, the same callers, problems for a wrong run."""

from __future__ import annotations

import csv
import io
import json
import uuid
from typing import Any

from tests.platform import Platform
from tests.scoring_fixtures import publish_demo

N = 150


async def _pages(platform: Platform, run_id: str, include: str | None) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    after: str | None = None
    async with platform.client("scoring", "service") as svc:
        while True:
            params: dict[str, Any] = {"limit": 40}
            if include:
                params["include"] = include
            if after:
                params["after"] = after
            r = await svc.get(f"/v1/evaluations/{run_id}/scores", params=params)
            assert r.status_code == 200, r.text
            items += r.json()["items"]
            after = r.json()["next_after"]
            if after is None:
                return items


async def _export(platform: Platform, run_id: str, include: str | None) -> list[dict[str, str]]:
    params = {"include": include} if include else {}
    async with platform.client("scoring", "service") as svc:
        r = await svc.get(f"/v1/evaluations/{run_id}/scores/export", params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert int(r.headers["x-total-count"]) == len(rows)
    return rows


def _cell(value: Any) -> str:
    """A JSON value as PostgreSQL's CSV writes it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _same(exported: str, paged: Any) -> bool:
    if isinstance(paged, float) and not isinstance(paged, bool):
        return exported != "" and float(exported) == paged
    if isinstance(paged, list):
        return exported != "" and json.loads(exported) == paged
    return exported == _cell(paged)


async def test_the_export_has_the_pages_rows_and_values(platform: Platform) -> None:
    run_id = await publish_demo(platform, n=N, seed=5)
    pages = await _pages(platform, run_id, None)
    rows = await _export(platform, run_id, None)
    assert [r["uscc"] for r in rows] == [p["uscc"] for p in pages]
    assert len(rows) == N
    for row, item in zip(rows, pages, strict=True):
        assert set(row) == set(item) - {"dimensions", "cohort", "facts"}
        for key, value in row.items():
            assert _same(value, item[key]), (item["uscc"], key, value, item[key])
    assert all(r["total"] and r["rank"] and r["stage"] for r in rows if r["scored"] == "t")


async def test_the_export_with_facts_has_the_pages_facts(platform: Platform) -> None:
    run_id = await publish_demo(platform, n=N, seed=6)
    pages = await _pages(platform, run_id, "facts")
    rows = await _export(platform, run_id, "facts")
    assert len(rows) == len(pages) == N
    checked = 0
    for row, item in zip(rows, pages, strict=True):
        assert row["uscc"] == item["uscc"]
        for code, value in item["facts"].items():
            assert _same(row[code], value), (item["uscc"], code, row[code], value)
            checked += value is not None
    assert checked > N  # facts were there to compare, not only nulls


async def test_only_the_government_and_services_read_the_export(platform: Platform) -> None:
    run_id = await publish_demo(platform, n=30, seed=2)
    path = f"/v1/evaluations/{run_id}/scores/export"
    async with platform.client("scoring") as anonymous:
        r = await anonymous.get(path)
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    async with platform.client(
        "scoring", "enterprise", uscc=(await _export(platform, run_id, None))[0]["uscc"]
    ) as ent:
        r = await ent.get(path)
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("application/problem+json")
    async with platform.client("scoring", "bank", bank_id="icbc-binjiang") as bank:
        r = await bank.get(path, params={"include": "facts"})
    assert r.status_code == 403
    async with platform.client("scoring", "government") as gov:
        r = await gov.get(path)
    assert r.status_code == 200


async def test_an_unknown_run_or_a_bad_include_is_a_problem(platform: Platform) -> None:
    await publish_demo(platform, n=20, seed=3)
    async with platform.client("scoring", "service") as svc:
        r = await svc.get(f"/v1/evaluations/{uuid.uuid4()}/scores/export")
        assert r.status_code == 404
        assert r.headers["content-type"].startswith("application/problem+json")
        r = await svc.get("/v1/evaluations/not-a-uuid/scores/export")
        assert r.status_code == 422
        r = await svc.get(f"/v1/evaluations/{uuid.uuid4()}/scores/export?include=all")
        assert r.status_code == 422
        assert r.headers["content-type"].startswith("application/problem+json")
