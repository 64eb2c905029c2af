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

from devtools.demo import generate, write_csv

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


DEMO_APPLICANTS = 64  # the pilot: "more than 60 enterprises applied online"


def _polite(send: Any, *args: Any, **kwargs: Any) -> httpx.Response:
    """Send, and on 429 wait as long as `Retry-After` says (a well-behaved client)."""
    for _ in range(5):
        r: httpx.Response = send(*args, **kwargs)
        if r.status_code != 429:
            return r
        time.sleep(float(r.headers.get("Retry-After", "1")))
    return r


def _client_token(client: httpx.Client, client_id: str, secret: str) -> str:
    r = _polite(
        client.post,
        "/v1/auth/token",
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
    )
    r.raise_for_status()
    return str(r.json()["access_token"])


def _wait_for_credit_lines(client: httpx.Client, gov: dict[str, str], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client.get("/v1/credit/stats", headers=gov)
        if r.status_code == 200 and r.json()["coverage"]["enterprises_with_line"] > 0:
            return True
        time.sleep(1)
    return False


def simulate_demo_activity(
    gateway_url: str, idp_url: str, creds: dict[str, Any], var: Path
) -> None:
    """A first season of the financial supermarket, through the real flows: legal persons
    log in with the enterprise code and apply online; the banks review, decide, disburse.
    Idempotent: the same enterprises apply with the same Idempotency-Keys (a replay returns
    the first answer), and banks act only on what is still waiting for them."""
    if not creds:
        return
    with httpx.Client(base_url=gateway_url, timeout=60) as client:
        gov = {"Authorization": f"Bearer {_government_token(client, creds)}"}
        if not _wait_for_credit_lines(client, gov, timeout=90):
            print("demo activity skipped: the credit service has no lines yet")
            return
        enterprises = json.loads((var / "demo-enterprises.json").read_text())
        _apply_online(client, idp_url, enterprises)
        for bank in creds.get("banks", []):
            _bank_decides(client, bank)
        totals = client.get("/v1/credit/stats", headers=gov).json()["totals"]
        print(
            f"demo activity: {totals['enterprises_applied']} enterprises applied online, "
            f"{totals['approved']} approved, {totals['enterprises_granted']} granted "
            f"{totals['amount_granted'] / 1e6:.1f} million CNY"
        )


def _apply_online(client: httpx.Client, idp_url: str, enterprises: list[dict[str, Any]]) -> None:
    """Up to DEMO_APPLICANTS legal persons, spread over the population, log in and apply."""
    step = max(1, len(enterprises) // (DEMO_APPLICANTS * 2))
    applied = 0
    for i, ent in enumerate(enterprises[::step]):
        if applied == DEMO_APPLICANTS:
            break
        sso = _polite(
            httpx.post, f"{idp_url}/simulate-login", data={"uscc": ent["uscc"]}, timeout=10
        )
        if sso.status_code != 200:
            continue
        login = _polite(
            client.post, "/v1/auth/esso/exchange", json={"ssotoken": sso.json()["ssotoken"]}
        )
        if login.status_code != 200:
            continue
        me = {"Authorization": f"Bearer {login.json()['access_token']}"}
        offers = client.get(f"/v1/credit/enterprises/{ent['uscc']}/offers", headers=me)
        items = offers.json().get("items", []) if offers.status_code == 200 else []
        if not items:
            continue
        offer = items[i % len(items)]  # spread the applicants over the three banks
        amount = int(offer["amount"] * (0.6 + 0.4 * ((i * 7) % 5) / 4))
        r = client.post(
            "/v1/credit/applications",
            json={"product_id": offer["product_id"], "amount": max(amount, 100_000)},
            headers={**me, "Idempotency-Key": f"demo-{ent['uscc']}"},
        )
        if r.status_code in (200, 201):
            applied += 1


def _bank_decides(client: httpx.Client, bank: dict[str, Any]) -> None:
    """The bank reviews what waits for it; rejects one in eight, approves and mostly
    disburses the rest."""
    headers = {
        "Authorization": "Bearer " + _client_token(client, bank["client_id"], bank["client_secret"])
    }
    apps = client.get(
        "/v1/credit/applications",
        params={"status": "submitted", "limit": 100},
        headers=headers,
    )
    for n, app in enumerate(apps.json().get("items", []) if apps.status_code == 200 else []):
        base = f"/v1/credit/applications/{app['id']}"
        client.post(f"{base}/review", json={"note": "materials complete"}, headers=headers)
        if n % 8 == 7:
            client.post(
                f"{base}/decision",
                json={"decision": "reject", "reason_codes": ["existing_exposure"]},
                headers=headers,
            )
            continue
        r = client.post(
            f"{base}/decision",
            json={
                "decision": "approve",
                "amount": app["requested_amount"],
                "rate": 3.45,
                "term_months": 12,
            },
            headers=headers,
        )
        if r.status_code == 200 and n % 5 != 4:  # a few approved, not yet drawn
            client.post(f"{base}/disburse", json={"note": "credit granted"}, headers=headers)
