"""Demo clients for `make run`, and the development provider's refusal of production."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from devtools.idp.app import create_app as create_idp
from devtools.idp.settings import IdpSettings
from devtools.idp.staff import default_accounts
from gateway.bootstrap import DEMO_BANKS, seed_demo_clients
from gateway.settings import GatewaySettings
from scripts.launcher import BANK_IDS, Launcher
from shared.components import COMPONENTS
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
    assert first["portal"]["client_id"] == "web-portal"
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


def test_the_launcher_configures_both_sides_of_staff_sign_in(tmp_path: Path) -> None:
    """make run: the gateway trusts the development provider for the portal's ID tokens, the
    provider knows the portal's callback, and the portal gets both registrations."""
    launcher = Launcher(database_url="postgresql://unused", var=tmp_path, port_offset=500)
    launcher.creds = {"portal": {"client_id": "web-portal", "client_secret": "s3cret"}}
    components = {c.name: c for c in COMPONENTS}
    gateway = launcher.component_env(components["gateway"])
    idp = launcher.component_env(components["idp"])
    (provider,) = json.loads(gateway["GATEWAY_STAFF_PROVIDERS"])
    (client,) = json.loads(idp["IDP_OIDC_CLIENTS"])
    assert provider["issuer"] == idp["IDP_ISSUER"] == launcher.url("idp")
    assert provider["audience"] == client["client_id"]
    assert client["redirect_uris"] == [launcher.portal_url() + "/auth/staff/callback"]
    assert set(provider["orgs"]) == {"government", *BANK_IDS}
    # Settings of both sides accept what the launcher wrote.
    GatewaySettings(staff_providers=[provider])
    IdpSettings(oidc_clients=[client], issuer=idp["IDP_ISSUER"])
    portal = launcher.portal_staff_env()
    (rp,) = json.loads(portal["STAFF_PROVIDERS"])
    assert (rp["client_id"], rp["client_secret"]) == (client["client_id"], client["secret"])
    assert rp["issuer"] == provider["issuer"]
    assert (portal["GATEWAY_CLIENT_ID"], portal["GATEWAY_CLIENT_SECRET"]) == (
        "web-portal",
        "s3cret",
    )
    # The secret is made once and kept across restarts.
    again = Launcher(database_url="postgresql://unused", var=tmp_path, port_offset=500)
    assert again.portal_oidc_secret() == client["secret"]
    # A production gateway is never handed the development provider.
    prod = Launcher(
        database_url="postgresql://unused",
        var=tmp_path,
        extra_env={"gateway": {"ENVIRONMENT": "production"}},
    )
    assert "GATEWAY_STAFF_PROVIDERS" not in prod.component_env(components["gateway"])


def test_every_demo_bank_has_an_officer_and_the_banks_agree() -> None:
    accounts = default_accounts()
    assert set(DEMO_BANKS) == set(BANK_IDS)
    officers = {a.org: a for a in accounts if a.org != "government"}
    assert set(officers) == set(DEMO_BANKS)
    assert all(a.role == "operator" for a in officers.values())
    roles = sorted(a.role for a in accounts if a.org == "government")
    assert roles == ["operator", "viewer"]
    assert len({a.subject for a in accounts}) == len(accounts)
