"""Getting a published evaluation into the scoring service, the way the portal would:
import generated demo files, evaluate, publish. For any test that needs scores."""

from __future__ import annotations

import tempfile
from functools import lru_cache
from pathlib import Path

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
