"""The reliability suite: the assembled platform as real uvicorn processes on 127.0.0.1 (port
offset 10000), on its own embedded PostgreSQL under var/reliability/pgdata, with a fresh
database and a small demo population loaded through the gateway. Started once per session;
every test leaves it running and healthy for the next.

Run alone with `make reliability` (about a minute); `make test` runs it too.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from scripts.assembled import Assembled, start_assembled

PROBLEM = "application/problem+json"
BANK_X = "icbc-binjiang"
BANK_Y = "hzbank-binjiang"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/reliability/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.reliability)


@dataclass
class Principals:
    government: str
    bank_x: str
    bank_y: str
    enterprise_a: str
    enterprise_b: str
    uscc_a: str
    uscc_b: str
    uscc_c: str  # scored, never applied nor consented to anyone


@pytest.fixture(scope="session")
def assembled() -> Iterator[Assembled]:
    platform = start_assembled()
    try:
        yield platform
    finally:
        platform.close()


@pytest.fixture(scope="session")
def principals(assembled: Assembled) -> Principals:
    a, b, c = assembled.scored_enterprises(3)
    return Principals(
        government=assembled.government_token(),
        bank_x=assembled.bank_token(BANK_X),
        bank_y=assembled.bank_token(BANK_Y),
        enterprise_a=assembled.enterprise_token(a),
        enterprise_b=assembled.enterprise_token(b),
        uscc_a=a,
        uscc_b=b,
        uscc_c=c,
    )


def client(assembled: Assembled, token: str | None = None, timeout: float = 30) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=assembled.gateway, headers=headers, timeout=timeout)


def wait_healthy(assembled: Assembled, token: str, timeout: float = 60) -> None:
    """Every service answers through the gateway again (breakers closed, pools refilled)."""
    probes = ("/v1/scoring/indicators", "/v1/credit/banks", "/v1/policy/pools")
    deadline = time.monotonic() + timeout
    with client(assembled, token, timeout=5) as c:
        while True:
            try:
                if all(c.get(p).status_code == 200 for p in probes):
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("the platform did not become healthy again")
            time.sleep(0.5)
