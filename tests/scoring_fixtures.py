"""Getting a published evaluation into the scoring service, the way the portal would:
import generated demo files, evaluate, publish. For any test that needs scores."""

from __future__ import annotations

import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import httpx

from devtools.demo import DemoData, generate, write_csv
from tests.platform import Platform


@lru_cache(maxsize=8)
def demo(n: int, seed: int) -> DemoData:
    return generate(n, seed=seed, periods=(2024, 2025))


def demo_csv(n: int, seed: int, period: int) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"facts-{period}.csv"
        write_csv(demo(n, seed), period, path, legal_rep=True)
        return path.read_bytes()


async def import_period(platform: Platform, n: int, seed: int, period: int) -> None:
    async with platform.client("scoring", "government") as gov:
        r = await gov.post(
            "/v1/imports",
            files={"file": (f"facts-{period}.csv", demo_csv(n, seed, period), "text/csv")},
        )
        assert r.status_code == 201, r.text


async def evaluate_and_publish(platform: Platform, period: int) -> str:
    async with platform.client("scoring", "government") as gov:
        r = await gov.post("/v1/evaluations", json={"period": period, "wait": True})
        assert r.status_code == 201, r.text
        run = r.json()
        assert run["status"] == "completed", run
        r = await gov.post(f"/v1/evaluations/{run['id']}/publish")
        assert r.status_code == 200, r.text
        return str(run["id"])


async def publish_demo(platform: Platform, n: int = 200, seed: int = 1, period: int = 2025) -> str:
    """Import `n` demo enterprises for `period`, evaluate and publish; returns the run id."""
    if "scoring" not in platform.apps:
        await platform.start("scoring")
    await import_period(platform, n, seed, period)
    return await evaluate_and_publish(platform, period)


async def unpublished_run(platform: Platform, content: bytes, period: int = 2025) -> str:
    """Import `content` (CSV) and evaluate the period, without publishing: the run's id."""
    async with platform.client("scoring", "government") as gov:
        r = await gov.post("/v1/imports", files={"file": ("more.csv", content, "text/csv")})
        assert r.status_code == 201, r.text
        r = await gov.post("/v1/evaluations", json={"period": period, "wait": True})
        assert r.status_code == 201, r.text
        return str(r.json()["id"])


async def what_if_pages(
    service: httpx.AsyncClient, run_id: str, limit: int
) -> tuple[dict[str, Any], list[Any]]:
    """A service's what-if of a run, every page of its changes: (the first answer, changes)."""
    items: list[Any] = []
    offset: int | None = 0
    first: dict[str, Any] = {}
    while offset is not None:
        r = await service.post(
            "/v1/what-if/evaluation", json={"run_id": run_id, "limit": limit, "offset": offset}
        )
        assert r.status_code == 200, r.text
        first = first or r.json()
        items += r.json()["changes"]["items"]
        offset = r.json()["changes"]["next_offset"]
    return first, items
