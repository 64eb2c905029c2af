"""The gateway in front of the real services, with the development identity provider standing
in for the enterprise-code service and for the staff's OpenID Connect provider (it speaks the
real protocols; nothing of ours is mocked)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.idp.app import create_app as create_idp
from devtools.idp.settings import IdpSettings
from devtools.idp.staff import StaffAccount, default_accounts
from gateway.bootstrap import DEMO_BANKS, seed_demo_clients
from tests.platform import Platform
from tests.staff_login import StaffLogin

ESSO_SECRET = "test-esso-project-secret-0123456789"
ESSO_PROJECT = "ip-test-project"

ENTERPRISE_A = {"uscc": "91330108MA27XK0A1M", "name": "杭州甲科技有限公司", "legal_rep": "张三"}
ENTERPRISE_B = {"uscc": "91330108MA2B3C4D5A", "name": "杭州乙智能有限公司", "legal_rep": "李四"}
ENTERPRISE_C = {"uscc": "91330106MA2HXFY97H", "name": "杭州丙生物有限公司", "legal_rep": "王五"}

# The portal as a relying party of the development OpenID Connect provider.
IDP_ISSUER = "http://idp"
PORTAL_RP = "innovation-points-portal"
PORTAL_RP_SECRET = "test-portal-rp-secret-0123456789"
PORTAL_CALLBACK = "http://portal/auth/staff/callback"
# A second relying party: its ID tokens are not for the gateway's staff provider.
OTHER_RP = "another-application"
OTHER_RP_SECRET = "test-other-rp-secret-0123456789"
OTHER_CALLBACK = "http://other/callback"
# Beside the demo accounts, a bank viewer (the demo has only bank operators).
BANK_VIEWER = StaffAccount(
    "bank-viewer-01", "qianli", "钱立", "icbc-binjiang", "ICBC Binjiang", "viewer"
)
STAFF = (*default_accounts(), BANK_VIEWER)
GOV_OPERATOR, GOV_VIEWER, ICBC_OFFICER = STAFF[0], STAFF[1], STAFF[2]


@dataclass
class Gateway:
    platform: Platform
    var_dir: Path
    credentials: dict[str, Any]

    def client(self, token: str | None = None, **kw: Any) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(
            transport=self.platform.transport,
            base_url="http://gateway",
            headers=headers,
            timeout=30,
            **kw,
        )

    def idp(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self.platform.transport, base_url="http://idp")

    async def ssotoken(self, uscc: str, **form: Any) -> str:
        async with self.idp() as idp:
            r = await idp.post("/simulate-login", data={"uscc": uscc, **form})
            assert r.status_code == 200, r.text
            return str(r.json()["ssotoken"])

    async def login(self, uscc: str) -> dict[str, Any]:
        """A mini-app backend's login: simulate, then exchange the ssotoken."""
        token = await self.ssotoken(uscc)
        async with self.client() as c:
            r = await c.post("/v1/auth/esso/exchange", json={"ssotoken": token})
            assert r.status_code == 200, r.text
            body: dict[str, Any] = r.json()
            return body

    async def client_token(self, client_id: str, secret: str, **form: str) -> httpx.Response:
        async with self.client() as c:
            return await c.post(
                "/v1/auth/token",
                data={"grant_type": "client_credentials", **form},
                auth=(client_id, secret),
            )

    async def government(self) -> str:
        gov = self.credentials["government"]
        r = await self.client_token(gov["client_id"], gov["client_secret"])
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    async def bank(self, bank_id: str) -> str:
        bank = next(b for b in self.credentials["banks"] if b["bank_id"] == bank_id)
        r = await self.client_token(bank["client_id"], bank["client_secret"])
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    def staff_login(self, **kw: Any) -> StaffLogin:
        """The portal's part of staff sign-in, against the in-process provider and gateway."""
        portal = self.credentials["portal"]
        return StaffLogin(
            transport=self.platform.transport,
            issuer=IDP_ISSUER,
            gateway="http://gateway",
            client_id=kw.pop("client_id", PORTAL_RP),
            client_secret=kw.pop("client_secret", PORTAL_RP_SECRET),
            redirect_uri=kw.pop("redirect_uri", PORTAL_CALLBACK),
            gateway_client=(portal["client_id"], portal["client_secret"]),
        )

    async def staff(self, account: StaffAccount) -> dict[str, Any]:
        """A staff session (the gateway's token-exchange answer) for the account."""
        async with self.staff_login() as login:
            return await login.sign_in(account.subject)


def gateway_settings(var_dir: Path, **extra: Any) -> dict[str, Any]:
    return {
        "key_file": var_dir / "keys" / "issuer.json",
        "var_dir": var_dir,
        "public_url": "http://gateway",
        "esso_login_url": "http://idp/opensso/spsaehandler/metaAlias/sp",
        "esso_query_url": "http://idp/rest/user/query",
        "esso_project_id": ESSO_PROJECT,
        "esso_project_secret": ESSO_SECRET,
        "revocation_poll_seconds": 0.2,
        "staff_providers": [
            {
                "name": "dev",
                "issuer": IDP_ISSUER,
                "jwks_url": f"{IDP_ISSUER}/oidc/jwks",
                "audience": PORTAL_RP,
                "org": "claim:org",
                "orgs": ["government", *DEMO_BANKS],
            }
        ],
        **extra,
    }


def idp_settings(var_dir: Path) -> IdpSettings:
    return IdpSettings(
        environment="test",
        project_id=ESSO_PROJECT,
        project_secret=ESSO_SECRET,
        enterprises_file=var_dir / "demo-enterprises.json",
        allowed_callbacks=["http://gateway/v1/auth/esso/callback"],
        simulate_login=True,
        issuer=IDP_ISSUER,
        oidc_key_file=var_dir / "keys" / "idp-oidc.json",
        oidc_clients=[
            {
                "client_id": PORTAL_RP,
                "secret": PORTAL_RP_SECRET,
                "redirect_uris": [PORTAL_CALLBACK],
            },
            {"client_id": OTHER_RP, "secret": OTHER_RP_SECRET, "redirect_uris": [OTHER_CALLBACK]},
        ],
    )


@pytest.fixture
def var_dir(tmp_path: Path) -> Path:
    (tmp_path / "demo-enterprises.json").write_text(
        json.dumps([ENTERPRISE_A, ENTERPRISE_B, ENTERPRISE_C], ensure_ascii=False)
    )
    return tmp_path


@pytest.fixture
async def gw(platform: Platform, var_dir: Path) -> Gateway:
    """Gateway, scoring and the development identity provider; demo clients seeded."""
    platform.apps["idp"] = create_idp(idp_settings(var_dir), staff=STAFF)
    platform.extra["gateway"] = {"issuer": platform.issuer}
    platform.settings_overrides["gateway"] = gateway_settings(var_dir)
    await platform.start("scoring", "gateway")
    credentials = await seed_demo_clients(platform.database_url, var_dir)
    return Gateway(platform, var_dir, credentials)
