"""The import route's larger body bound: only a multipart upload to POST /v1/scoring/imports
gets it, every other route keeps its own, and a gzip bomb is refused with 413 all the same."""

from __future__ import annotations

import gzip

from tests.gateway.conftest import Gateway, gateway_settings
from tests.gateway.test_routing import PROBLEM, probe_upstream
from tests.scoring.test_imports import HEADER, code


async def test_only_an_import_upload_passes_the_larger_bound(gw: Gateway) -> None:
    await gw.platform.stop("gateway")
    gw.platform.settings_overrides["gateway"] = gateway_settings(
        gw.var_dir, max_body_bytes=4096, max_import_body_bytes=256 * 1024
    )
    await gw.platform.start("gateway")
    rows = [
        f"{code(i)},杭州测试{i}号科技有限公司,2025,{900 + i},{60 + i},5,1,0," for i in range(900)
    ]
    content = ("\n".join([HEADER, *rows]) + "\n").encode()
    assert 4096 < len(content) < 256 * 1024
    token = await gw.government()
    async with gw.client(token) as gov:
        r = await gov.post(
            "/v1/scoring/imports", files={"file": ("facts.csv", content, "text/csv")}
        )
        assert r.status_code == 201, r.text
        assert r.json()["rows_inserted"] == 900
        packed = gzip.compress(content)
        r = await gov.post(
            "/v1/scoring/imports", files={"file": ("facts.csv.gz", packed, "application/gzip")}
        )
        assert r.status_code == 201, r.text
        assert r.json()["rows_unchanged"] == 900
        # The same bytes, not as a multipart upload, or to another route: the ordinary bound.
        r = await gov.post(
            "/v1/scoring/imports", content=content, headers={"content-type": "text/csv"}
        )
        assert r.status_code == 413 and r.headers["content-type"] == PROBLEM
        gw.platform.apps["policy"] = probe_upstream("policy", gw.platform.issuer.jwks())
        r = await gov.post("/v1/policy/imports", files={"file": ("facts.csv", content, "text/csv")})
        assert r.status_code == 413 and r.headers["content-type"] == PROBLEM
        # Past the import bound itself.
        r = await gov.post(
            "/v1/scoring/imports", files={"file": ("f.csv", content * 300, "text/csv")}
        )
        assert r.status_code == 413 and r.headers["content-type"] == PROBLEM


async def test_a_gzip_bomb_through_the_gateway_is_a_413(gw: Gateway) -> None:
    await gw.platform.stop("scoring")
    await gw.platform.start("scoring", max_import_inflated_bytes=1024 * 1024)
    bomb = gzip.compress(b"uscc,name,period\n" + b"0" * (16 * 1024 * 1024))
    token = await gw.government()
    async with gw.client(token) as gov:
        r = await gov.post(
            "/v1/scoring/imports", files={"file": ("facts.csv.gz", bomb, "application/gzip")}
        )
    assert r.status_code == 413, r.text
    assert r.headers["content-type"] == PROBLEM
