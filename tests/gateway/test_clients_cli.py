"""The client registration CLI: a created client can get tokens, a rotated one only with the
new secret, a disabled one not at all."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway import clients_cli
from tests.gateway.conftest import gateway_settings
from tests.platform import Platform


async def call(database_url: str, *argv: str) -> dict[str, Any]:
    return await clients_cli.run(database_url, clients_cli.parser().parse_args(list(argv)))


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
    rotated = await call(database_url, "rotate", "bank-test")
    assert rotated["client_secret"] != created["client_secret"]
    assert await token(platform, "bank-test", created["client_secret"]) == 401
    assert await token(platform, "bank-test", rotated["client_secret"]) == 200
    listing = await call(database_url, "list")
    assert [c["client_id"] for c in listing["clients"]] == ["bank-test"]
    assert "secret_hash" not in json.dumps(listing)
    await call(database_url, "disable", "bank-test")
    assert await token(platform, "bank-test", rotated["client_secret"]) == 401
    with pytest.raises(SystemExit):
        await call(database_url, "create", "bank-x", "--kind", "bank", "--name", "no bank id")
    with pytest.raises(SystemExit):
        await call(database_url, "rotate", "nobody")
