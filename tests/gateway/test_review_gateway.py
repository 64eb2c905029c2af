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
