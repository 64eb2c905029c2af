"""The client registration CLI: a created client can get tokens, a rotated one only with the
new secret, a disabled one not at all."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from gateway import clients_cli
from gateway.auth.clients import load_or_create_secret_key
from tests.gateway.conftest import gateway_settings
from tests.platform import Platform


async def call(database_url: str, var_dir: Path, *argv: str) -> dict[str, Any]:
    # The key the gateway under test uses (its development key under var_dir).
    key = load_or_create_secret_key(var_dir)
    return await clients_cli.run(database_url, clients_cli.parser().parse_args(list(argv)), key)


async def access_token(platform: Platform, client_id: str, secret: str) -> str:
    async with platform.client("gateway") as c:
        r = await c.post(
            "/v1/auth/token",
            data={"grant_type": "client_credentials"},
            auth=(client_id, secret),
        )
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])


async def use(platform: Platform, access: str) -> int:
    async with platform.client("gateway") as c:
        r = await c.get("/v1/me", headers={"Authorization": f"Bearer {access}"})
        return r.status_code


async def token(platform: Platform, client_id: str, secret: str) -> int:
    async with platform.client("gateway") as c:
        r = await c.post(
            "/v1/auth/token",
            data={"grant_type": "client_credentials"},
            auth=(client_id, secret),
        )
        return r.status_code


async def test_create_rotate_disable(platform: Platform, database_url: str, var_dir: Path) -> None:
    platform.extra["gateway"] = {"issuer": platform.issuer}
    platform.settings_overrides["gateway"] = gateway_settings(var_dir)
    await platform.start("gateway")
    created = await call(
        database_url,
        var_dir,
        "create",
        "bank-test",
        "--kind",
        "bank",
        "--bank-id",
        "b1",
        "--name",
        "Test bank",
        "--scope",
        "credit:decide",
    )
    assert await token(platform, "bank-test", created["client_secret"]) == 200
    held = await access_token(platform, "bank-test", created["client_secret"])
    assert await use(platform, held) == 200
    await asyncio.sleep(1.1)  # revocation works in whole seconds of issue time
    rotated = await call(database_url, var_dir, "rotate", "bank-test")
    state = platform.fastapi["gateway"].state
    await state.identity.revocations.poll(state.sessionmaker)
    assert await use(platform, held) == 401, "a token from before the rotation still worked"
    fresh = await access_token(platform, "bank-test", rotated["client_secret"])
    assert await use(platform, fresh) == 200
    assert rotated["client_secret"] != created["client_secret"]
    assert await token(platform, "bank-test", created["client_secret"]) == 401
    assert await token(platform, "bank-test", rotated["client_secret"]) == 200
    listing = await call(database_url, var_dir, "list")
    assert [c["client_id"] for c in listing["clients"]] == ["bank-test"]
    assert "secret_hash" not in json.dumps(listing)
    await call(database_url, var_dir, "disable", "bank-test")
    assert await token(platform, "bank-test", rotated["client_secret"]) == 401
    with pytest.raises(SystemExit):
        await call(
            database_url, var_dir, "create", "bank-x", "--kind", "bank", "--name", "no bank id"
        )
    with pytest.raises(SystemExit):
        await call(database_url, var_dir, "rotate", "nobody")
