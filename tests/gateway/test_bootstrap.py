"""Demo clients for `make run`, and the development provider's refusal of production."""

from __future__ import annotations

import json
import stat

import pytest
from pydantic import ValidationError

from devtools.idp.app import create_app as create_idp
from devtools.idp.settings import IdpSettings
from gateway.bootstrap import seed_demo_clients
from tests.gateway.conftest import Gateway


async def test_seed_is_idempotent_and_written_privately(gw: Gateway) -> None:
    path = gw.var_dir / "demo-credentials.json"
    first = json.loads(path.read_text())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert {b["bank_id"] for b in first["banks"]} == {
        "icbc-binjiang",
        "hzub-binjiang",
        "hzbank-binjiang",
    }
    assert set(first["services"]) == {"credit", "policy", "scoring"}
    again = await seed_demo_clients(gw.platform.database_url, gw.var_dir)
    assert again == first == gw.credentials
    # Every written secret works.
    for bank in again["banks"]:
        r = await gw.client_token(bank["client_id"], bank["client_secret"])
        assert r.status_code == 200, r.text
    # A lost file: new secrets, the old ones stop working.
    path.unlink()
    fresh = await seed_demo_clients(gw.platform.database_url, gw.var_dir)
    old = first["government"]
    assert fresh["government"]["client_secret"] != old["client_secret"]
    r = await gw.client_token(old["client_id"], old["client_secret"])
    assert r.status_code == 401


def test_development_provider_refuses_production(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError):
        IdpSettings(environment="production")
    monkeypatch.setenv("ENVIRONMENT", "production")
    with pytest.raises(RuntimeError):
        create_idp(IdpSettings(environment="development"))


async def test_simulate_login_for_an_unknown_enterprise_is_404(gw: Gateway) -> None:
    async with gw.idp() as idp:
        r = await idp.post("/simulate-login", data={"uscc": "91330108MA2J7QL81B"})
        assert r.status_code == 404
        assert r.headers["content-type"] == "application/problem+json"
        r = await idp.post("/simulate-login", data={})
        assert r.status_code == 422
        r = await idp.get(
            "/opensso/spsaehandler/metaAlias/sp", params={"spappurl": "https://evil.example/"}
        )
        assert r.status_code == 400
