"""The traffic mix of `make bench-load`, for locust (run by scripts/bench_load.py, which logs
the principals in and passes their tokens in BENCH_LOAD_PRINCIPALS).

Weights follow who uses the platform: mostly legal persons opening the mini-app, then bank
systems polling their applications and approved amounts, then government staff on rankings.
Requests are named by route template so the report has one line per route. Users are
`FastHttpUser`s (geventhttpclient): locust shares the platform's two cores, and its
requests-based client spent several times the CPU per request.
"""

from __future__ import annotations

import json
import os
import random
from typing import Any

from locust import FastHttpUser, between, task

_PRINCIPALS: dict[str, Any] = json.loads(
    open(os.environ["BENCH_LOAD_PRINCIPALS"], encoding="utf-8").read()  # noqa: SIM115
)
STAGES = ("seed", "seedling", "growth", "expansion", "mature")


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class MiniApp(FastHttpUser):
    weight = 6
    wait_time = between(0.05, 0.25)

    def on_start(self) -> None:
        e = random.choice(_PRINCIPALS["enterprises"])
        self.uscc: str = e["uscc"]
        self.headers = _auth(e["token"])

    @task(4)
    def dashboard(self) -> None:
        self.client.get("/v1/me/dashboard", headers=self.headers, name="GET /v1/me/dashboard")

    @task(3)
    def score(self) -> None:
        self.client.get(
            f"/v1/scoring/enterprises/{self.uscc}/score",
            headers=self.headers,
            name="GET /v1/scoring/enterprises/{uscc}/score",
        )

    @task(1)
    def offers(self) -> None:
        self.client.get(
            f"/v1/credit/enterprises/{self.uscc}/offers",
            headers=self.headers,
            name="GET /v1/credit/enterprises/{uscc}/offers",
        )

    @task(1)
    def matches(self) -> None:
        self.client.get(
            f"/v1/policy/enterprises/{self.uscc}/matches",
            headers=self.headers,
            name="GET /v1/policy/enterprises/{uscc}/matches",
        )


class BankSystem(FastHttpUser):
    weight = 2
    wait_time = between(0.05, 0.25)

    def on_start(self) -> None:
        bank = random.choice(_PRINCIPALS["banks"])
        self.headers = _auth(bank["token"])
        self.applicants: list[str] = bank["applicants"]

    @task(2)
    def applications(self) -> None:
        self.client.get(
            "/v1/credit/applications?limit=20",
            headers=self.headers,
            name="GET /v1/credit/applications",
        )

    @task(2)
    def approved_amounts(self) -> None:
        self.client.get(
            f"/v1/credit/enterprises/{random.choice(self.applicants)}/approved-amounts",
            headers=self.headers,
            name="GET /v1/credit/enterprises/{uscc}/approved-amounts",
        )


class GovernmentPortal(FastHttpUser):
    weight = 1
    wait_time = between(0.1, 0.5)

    def on_start(self) -> None:
        self.headers = _auth(_PRINCIPALS["government"])

    @task(3)
    def rankings(self) -> None:
        self.client.get(
            f"/v1/scoring/rankings?stage={random.choice(STAGES)}&period=2025&limit=50",
            headers=self.headers,
            name="GET /v1/scoring/rankings",
        )

    @task(1)
    def credit_stats(self) -> None:
        self.client.get("/v1/credit/stats", headers=self.headers, name="GET /v1/credit/stats")

    @task(1)
    def pools(self) -> None:
        self.client.get("/v1/policy/pools", headers=self.headers, name="GET /v1/policy/pools")
