"""Demo data for `make run`: 5,036 enterprises (the pilot's first batch), 2024 and 2025.

The files are made by the deterministic generator; they are then imported, evaluated and
published through the gateway with the government portal's client credentials, exactly as
the portal would do it, so `make run` exercises the real path.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from devtools.backbook import BackBook, backbook
from devtools.demo import generate, write_csv

DEMO_SIZE = 5036
DEMO_SEED = 20200908
PERIODS = (2024, 2025)
# The synthetic back-book (devtools/backbook.py): loans granted on the 2024 scores.
BACKBOOK_PERIOD = 2024
# Each borrower signs in once, and the gateway allows 60 sign-ins a minute: ~2 minutes.
BACKBOOK_LOANS = 120


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
    book = backbook(data, BACKBOOK_PERIOD)
    (demo_dir / f"backbook-{BACKBOOK_PERIOD}.json").write_text(
        json.dumps(
            {
                "synthetic": True,
                "period": BACKBOOK_PERIOD,
                "bad": [bool(b) for b in book.bad],
                "first_missed": [int(m) for m in book.first_missed],
            }
        )
    )
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


def load_demo_through_gateway(
    gateway_url: str,
    creds: dict[str, Any],
    var: Path,
    after_publish: Callable[[int], None] | None = None,
) -> None:
    """`after_publish(period)` runs once a period is published, before the next is loaded
    (the back-book lends on the 2024 scores while they are the ones served)."""
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
            if after_publish is not None:
                after_publish(period)


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


# -- the synthetic back-book and a challenger (issue 13) -------------------------------------


def _bank_headers(client: httpx.Client, creds: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {
        b["bank_id"]: {
            "Authorization": "Bearer " + _client_token(client, b["client_id"], b["client_secret"])
        }
        for b in creds.get("banks", [])
    }


def _login(client: httpx.Client, idp_url: str, uscc: str) -> dict[str, str] | None:
    sso = _polite(httpx.post, f"{idp_url}/simulate-login", data={"uscc": uscc}, timeout=10)
    if sso.status_code != 200:
        return None
    login = _polite(
        client.post, "/v1/auth/esso/exchange", json={"ssotoken": sso.json()["ssotoken"]}
    )
    if login.status_code != 200:
        return None
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def _borrow(client: httpx.Client, idp_url: str, uscc: str, i: int) -> dict[str, Any] | None:
    """The enterprise logs in and applies for one of its offers (the application's JSON)."""
    me = _login(client, idp_url, uscc)
    if me is None:
        return None
    offers = client.get(f"/v1/credit/enterprises/{uscc}/offers", headers=me)
    items = offers.json().get("items", []) if offers.status_code == 200 else []
    if not items:
        return None
    offer = items[i % len(items)]
    r = _polite(
        client.post,
        "/v1/credit/applications",
        json={"product_id": offer["product_id"], "amount": max(100_000, offer["amount"] // 2)},
        headers={**me, "Idempotency-Key": f"backbook-{uscc}"},
    )
    return dict(r.json()) if r.status_code in (200, 201) else None


def _lend_and_report(
    client: httpx.Client, bank: dict[str, str], app: dict[str, Any], reports: list[Any]
) -> bool:
    """The bank approves and disburses the application, then reports the loan's year."""
    base = f"/v1/credit/applications/{app['id']}"
    if app["status"] in ("submitted", "under_review"):
        r = _polite(
            client.post,
            f"{base}/decision",
            json={
                "decision": "approve",
                "amount": app["requested_amount"],
                "rate": 3.6,
                "term_months": 12,
            },
            headers=bank,
        )
        if r.status_code != 200:
            return False
        app = r.json()
    if app["status"] == "approved":
        _polite(client.post, f"{base}/disburse", json={"note": "back-book"}, headers=bank)
    for n, body in enumerate(reports):
        _polite(
            client.post,
            f"/v1/credit/loans/{app['id']}/outcomes",
            json={**body, "synthetic": True},
            headers={**bank, "Idempotency-Key": f"backbook-{app['id']}-{n}"},
        )
    if reports and reports[-1]["state"] == "repaid":
        _polite(client.post, f"{base}/close", json={"note": "repaid"}, headers=bank)
    return True


def build_backbook(gateway_url: str, idp_url: str, creds: dict[str, Any], var: Path) -> None:
    """SYNTHETIC: BACKBOOK_LOANS firms borrow on the 2024 scores through the real flows, and
    their banks report the loans' 2025 through the credit outcomes API, marked synthetic.
    Idempotent (the same Idempotency-Keys; banks act only on what still waits)."""
    if not creds:
        return
    book = json.loads((var / "demo" / f"backbook-{BACKBOOK_PERIOD}.json").read_text())
    enterprises = json.loads((var / "demo-enterprises.json").read_text())
    with httpx.Client(base_url=gateway_url, timeout=60) as client:
        gov = {"Authorization": f"Bearer {_government_token(client, creds)}"}
        if not _wait_for_credit_lines(client, gov, timeout=90):
            print("back-book skipped: the credit service has no lines yet")
            return
        banks = _bank_headers(client, creds)
        step = max(1, len(enterprises) // (BACKBOOK_LOANS * 3))
        lent = 0
        for i in range(0, len(enterprises), step):
            if lent == BACKBOOK_LOANS:
                break
            app = _borrow(client, idp_url, enterprises[i]["uscc"], i)
            if app is None or app["bank_id"] not in banks:
                continue
            amount = int(app.get("approved_amount") or app["requested_amount"])
            reports = _path(book, i, amount)
            lent += _lend_and_report(client, banks[app["bank_id"]], app, reports)
        summary = client.get(
            "/v1/credit/outcomes/summary", params={"period": BACKBOOK_PERIOD}, headers=gov
        ).json()
        print(
            f"back-book (synthetic): {summary.get('loans')} loans on the {BACKBOOK_PERIOD} "
            f"scores, {summary.get('bad')} of {summary.get('observed')} firms bad"
        )


def _path(book: dict[str, Any], i: int, amount: int) -> list[dict[str, object]]:

    one = BackBook(
        period=int(book["period"]),
        probability=np.zeros(1),
        bad=np.array([book["bad"][i]]),
        first_missed=np.array([book["first_missed"][i]]),
    )
    return one.path(0, amount)


CHALLENGER_VERSION = "1.1-growth"


def run_demo_challenger(gateway_url: str, creds: dict[str, Any]) -> None:
    """A challenger model (growth weighted up in every stage) in shadow on the back-book's
    period, once: the demo's stored challenger report."""
    if not creds:
        return
    with httpx.Client(base_url=gateway_url, timeout=300) as client:
        client.headers["Authorization"] = f"Bearer {_government_token(client, creds)}"
        if client.get(f"/v1/scoring/models/{CHALLENGER_VERSION}/challenger-reports").json():
            return
        current = client.get("/v1/scoring/models/1.0").json()
        weights = current["spec"]["dimension_weights"]
        tilted = {stage: _tilt(dims, "growth", 5.0) for stage, dims in weights.items()}
        r = client.post(
            "/v1/scoring/models",
            json={
                "version": CHALLENGER_VERSION,
                "base_version": "1.0",
                "description": "Challenger: growth +5 points in every stage (demo)",
                "dimension_weights": tilted,
            },
        )
        if r.status_code not in (201, 409):
            print(f"challenger model not created: {r.status_code} {r.text[:200]}")
            return
        # On the back-book's period: the change of the validation statistics; on the period
        # served now: the downstream impact against the lines and pools of the champion.
        for period in (BACKBOOK_PERIOD, PERIODS[-1]):
            r = client.post(
                f"/v1/scoring/models/{CHALLENGER_VERSION}/challenger", json={"period": period}
            )
            if r.status_code != 201:
                print(f"challenger report not produced: {r.status_code} {r.text[:300]}")
                return
            report = r.json()["report"]
            credit = report["downstream"].get("credit", {}).get("counts") or {}
            print(
                f"challenger {CHALLENGER_VERSION} on {period}: validation "
                f"{report['validation'].get('change') or report['validation']['status']}; "
                f"lines raised {credit.get('raised')}, lowered {credit.get('lowered')}"
            )


def _tilt(dims: dict[str, float], dim: str, points: float) -> dict[str, float]:
    """Move `points` to `dim` from the others in proportion, so the stage still sums to 100."""
    others = sum(v for k, v in dims.items() if k != dim)
    if dim not in dims or others <= points:
        return dims
    return {k: (v + points if k == dim else v - points * v / others) for k, v in dims.items()}
