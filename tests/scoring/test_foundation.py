"""The foundation, exercised through the scoring app: health, identity, problems."""

from __future__ import annotations

import time

from joserfc import jwt
from joserfc.jwk import KeySet
from prometheus_client import generate_latest

from shared.auth.keys import generate_key
from tests.platform import Platform


async def test_health_and_readiness(platform: Platform) -> None:
    await platform.start("scoring")
    async with platform.client("scoring") as c:
        assert (await c.get("/healthz")).json() == {"status": "ok"}
        ready = await c.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": "ok", "migrations": "ok"}
        # Metrics are not on the public port but on METRICS_PORT (shared.metrics).
        assert (await c.get("/metrics")).status_code == 404
        assert "http_requests_total" in generate_latest().decode()


async def test_catalogue_needs_a_token_and_lists_24(platform: Platform) -> None:
    await platform.start("scoring")
    async with platform.client("scoring") as anon:
        r = await anon.get("/v1/indicators")
        assert r.status_code == 401
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["status"] == 401
    async with platform.client("scoring", "government") as gov:
        r = await gov.get("/v1/indicators")
        assert r.status_code == 200
        body = r.json()
        assert body["total"] == 24
        dims = [i["dimension"] for i in body["items"]]
        assert (dims.count("input"), dims.count("output")) == (7, 7)
        assert (dims.count("growth"), dims.count("auxiliary")) == (5, 5)


async def test_request_id_kept_when_well_formed_else_created(platform: Platform) -> None:
    await platform.start("scoring")
    async with platform.client("scoring", "government") as c:
        r = await c.get("/v1/indicators", headers={"X-Request-ID": "abc-12345678"})
        assert r.headers["x-request-id"] == "abc-12345678"
        r = await c.get("/v1/indicators", headers={"X-Request-ID": "bad id\x01"})
        assert r.headers["x-request-id"] != "bad id\x01"
        assert len(r.headers["x-request-id"]) == 32


async def test_forged_expired_wrong_audience_and_alg_none_refused(platform: Platform) -> None:
    await platform.start("scoring")
    now = int(time.time())
    claims = {"iss": "innovation-points-gateway", "sub": "x", "kind": "government", "jti": "1"}
    other = KeySet([generate_key()])
    kid = platform.issuer.signing_key_id
    forged = jwt.encode(
        {"alg": "ES256", "kid": kid},
        {**claims, "aud": "scoring", "exp": now + 60},
        next(iter(other.keys)),
    )
    expired = jwt.encode(
        {"alg": "ES256", "kid": kid},
        {**claims, "aud": "scoring", "exp": now - 3600},
        platform.issuer.key_set,
    )
    wrong_aud = platform.token("government", "credit")
    import base64
    import json

    def b64(d: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    alg_none = f"{b64({'alg': 'none', 'kid': kid})}.{b64({**claims, 'aud': 'scoring'})}."
    async with platform.client("scoring") as c:
        for token in (forged, expired, wrong_aud, alg_none, "garbage"):
            r = await c.get("/v1/indicators", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 401, token
            assert r.headers["content-type"] == "application/problem+json"
        # Identity headers alone are never trusted.
        r = await c.get("/v1/indicators", headers={"X-USCC": "x", "X-Principal": "government"})
        assert r.status_code == 401


async def test_readiness_follows_the_migration_state(platform: Platform) -> None:
    from sqlalchemy import text

    await platform.start("scoring")
    engine = platform.fastapi["scoring"].state.engine
    async with platform.client("scoring") as c:
        async with engine.begin() as conn:
            head = (
                await conn.execute(text("SELECT version_num FROM scoring.alembic_version"))
            ).scalar_one()
            # A newer release migrated the schema: this (old) pod keeps serving.
            await conn.execute(
                text("UPDATE scoring.alembic_version SET version_num = 'f00dfeed0001'")
            )
        r = await c.get("/readyz")
        assert r.status_code == 200 and r.json()["checks"]["migrations"] == "ahead"
        async with engine.begin() as conn:
            # Not migrated at all: not ready.
            await conn.execute(text("DELETE FROM scoring.alembic_version"))
        r = await c.get("/readyz")
        assert r.status_code == 503
        assert r.json()["status"] == "unavailable"
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO scoring.alembic_version VALUES (:v)"), {"v": head})
        assert (await c.get("/readyz")).status_code == 200
