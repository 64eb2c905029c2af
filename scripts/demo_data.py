"""Demo data for `make run`: 5,036 enterprises (the pilot's first batch), 2024 and 2025.

The files are made by the deterministic generator; they are then imported, evaluated and
published through the gateway with the government portal's client credentials, exactly as
the portal would do it, so `make run` exercises the real path.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

from services.scoring.demo import generate, write_csv

DEMO_SIZE = 5036
DEMO_SEED = 20200908
PERIODS = (2024, 2025)


def prepare_demo_files(var: Path, size: int = DEMO_SIZE) -> None:
    """`size` is smaller for the reliability suite, which needs a population, not the pilot's."""
    demo_dir = var / "demo"
    demo_dir.mkdir(parents=True, exist_ok=True)
    marker = demo_dir / f"ready-{size}-{DEMO_SEED}"
    if marker.exists():
        return
    for stale in demo_dir.glob("ready-*"):
        stale.unlink()  # the files below are rewritten for this size
    data = generate(size, seed=DEMO_SEED, periods=PERIODS)
    for period in PERIODS:
        write_csv(data, period, demo_dir / f"facts-{period}.csv", legal_rep=True)
    enterprises = [
        {"uscc": str(u), "name": str(n), "legal_rep": str(r)}
        for u, n, r in zip(data.uscc, data.name, data.legal_rep, strict=True)
    ]
    (var / "demo-enterprises.json").write_text(json.dumps(enterprises, ensure_ascii=False))
    marker.touch()


def _government_token(client: httpx.Client, creds: dict[str, Any]) -> str:
    gov = creds["government"]
    r = client.post(
        "/v1/auth/token",
        data={"grant_type": "client_credentials"},
        auth=(gov["client_id"], gov["client_secret"]),
    )
    r.raise_for_status()
    return str(r.json()["access_token"])


def load_demo_through_gateway(gateway_url: str, creds: dict[str, Any], var: Path) -> None:
    if not creds:
        print("no gateway credentials: demo data not loaded")
        return
    with httpx.Client(base_url=gateway_url, timeout=120) as client:
        client.headers["Authorization"] = f"Bearer {_government_token(client, creds)}"
        published = client.get(
            "/v1/scoring/evaluations", params={"status": "published", "limit": 10}
        )
        published.raise_for_status()
        done = {run["period"] for run in published.json()["items"]}
        for period in PERIODS:
            if period in done:
                continue
            started = time.perf_counter()
            path = var / "demo" / f"facts-{period}.csv"
            with path.open("rb") as fh:
                r = client.post("/v1/scoring/imports", files={"file": (path.name, fh, "text/csv")})
            r.raise_for_status()
            r = client.post("/v1/scoring/evaluations", json={"period": period, "wait": True})
            r.raise_for_status()
            run = r.json()
            client.post(f"/v1/scoring/evaluations/{run['id']}/publish").raise_for_status()
            print(
                f"demo {period}: imported, scored {run['scored_count']} of "
                f"{run['enterprise_count']} and published in {time.perf_counter() - started:.1f} s"
            )
