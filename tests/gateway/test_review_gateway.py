"""Review findings at the gateway: path confusion around the first-line checks, and bodies
read without bound."""

from __future__ import annotations

from collections.abc import AsyncIterator

from tests.gateway.conftest import ENTERPRISE_A, ENTERPRISE_B, Gateway, gateway_settings
from tests.gateway.test_routing import PROBLEM, probe_upstream


async def test_encoded_slash_cannot_skip_the_first_line_checks(gw: Gateway) -> None:
    # `/v1/policy%2Fenterprises/B/...` routes to policy (the path is matched decoded) while the
    # raw path after the prefix starts with an encoded slash: the enterprise check and the
    # dot-segment check looked at the wrong segments, and the service got `/v1%2F...`.
    gw.platform.apps["policy"] = probe_upstream("policy", gw.platform.issuer.jwks())
    a = (await gw.login(ENTERPRISE_A["uscc"]))["access_token"]
    b = ENTERPRISE_B["uscc"]
    async with gw.client(a) as c:
        for path in (
            f"/v1/policy%2Fenterprises/{b}/matches",
            f"/v1/policy%2fenterprises/{b}/pushes",
            "/v1/policy%2F..%2F..%2Fmetrics",
        ):
            r = await c.get(path)
            assert r.status_code in (400, 403), (path, r.status_code, r.text)
            assert r.headers["content-type"] == PROBLEM
        own = await c.get(f"/v1/policy/enterprises/{ENTERPRISE_A['uscc']}/matches")
        assert own.status_code == 200, own.text


class _Counting:
    def __init__(self, chunks: int, size: int) -> None:
        self.chunks = chunks
        self.size = size
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.chunks):
            self.sent += self.size
            yield b"x" * self.size


async def test_body_without_content_length_is_cut_at_the_limit(gw: Gateway) -> None:
    await gw.platform.stop("gateway")
    gw.platform.settings_overrides["gateway"] = gateway_settings(gw.var_dir, max_body_bytes=4096)
    await gw.platform.start("gateway")
    gw.platform.apps["policy"] = probe_upstream("policy", gw.platform.issuer.jwks())
    token = await gw.government()
    body = _Counting(chunks=1000, size=1024)  # 1 MB, streamed (no Content-Length)
    async with gw.client(token) as c:
        r = await c.post("/v1/policy/anything", content=body)
    assert r.status_code == 413, r.text
    assert r.headers["content-type"] == PROBLEM
    # The gateway stopped reading soon after the limit instead of buffering everything.
    assert body.sent < 64 * 1024, body.sent


async def test_unauthenticated_auth_bodies_are_bounded(gw: Gateway) -> None:
    body = _Counting(chunks=4096, size=1024)  # 4 MB of JSON-ish garbage, streamed
    async with gw.client() as c:
        r = await c.post(
            "/v1/auth/esso/exchange",
            content=body,
            headers={"content-type": "application/json"},
        )
    assert r.status_code == 413, r.text
    assert body.sent < 1024 * 1024, body.sent
    async with gw.client() as c:
        r = await c.post(
            "/v1/auth/token",
            content=b"grant_type=client_credentials&x=" + b"a" * (2 * 1024 * 1024),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    assert r.status_code == 413, r.text


async def test_client_scopes_bound_what_a_client_may_do(gw: Gateway) -> None:
    """A client that asked for (or was granted) only read scopes cannot change anything."""
    await gw.platform.start("scoring", "credit")
    gov = gw.credentials["government"]
    r = await gw.client_token(gov["client_id"], gov["client_secret"], scope="scoring:read")
    assert r.status_code == 200, r.text
    reader = r.json()["access_token"]
    async with gw.client(reader) as c:
        assert (await c.get("/v1/scoring/indicators")).status_code == 200
        denied = await c.post("/v1/scoring/models", json={"version": "9.1"})
        assert denied.status_code == 403
        assert denied.json()["required_scope"] == "scoring:admin"
        assert (await c.get("/v1/policy/policies")).status_code == 403
    full = await gw.government()
    async with gw.client(full) as c:
        r = await c.post("/v1/scoring/models", json={"version": "9.1"})
        assert r.status_code == 201, r.text
    bank = next(b for b in gw.credentials["banks"] if b["bank_id"] == "hzbank-binjiang")
    r = await gw.client_token(bank["client_id"], bank["client_secret"], scope="credit:read")
    async with gw.client(r.json()["access_token"]) as c:
        assert (await c.get("/v1/credit/applications")).status_code == 200
        r = await c.post(
            "/v1/credit/products",
            json={"name": "x"},
        )
        assert r.status_code == 403
        assert r.json()["type"].endswith("insufficient-scope")


async def test_consumed_ssotokens_are_forgotten_after_a_week(gw: Gateway) -> None:
    from datetime import timedelta

    from sqlalchemy import text

    from gateway.auth.sessions import purge_consumed_ssotokens

    await gw.login(ENTERPRISE_A["uscc"])
    await gw.login(ENTERPRISE_A["uscc"])
    maker = gw.platform.fastapi["gateway"].state.sessionmaker
    async with maker() as db, db.begin():
        await db.execute(
            text(
                "UPDATE gateway.consumed_ssotokens SET consumed_at = now() - interval '8 days' "
                "WHERE token_hash = (SELECT min(token_hash) FROM gateway.consumed_ssotokens)"
            )
        )
    async with maker() as db, db.begin():
        assert await purge_consumed_ssotokens(db, timedelta(days=7)) == 1
    async with maker() as db:
        left = await db.scalar(text("SELECT count(*) FROM gateway.consumed_ssotokens"))
    assert left == 1
