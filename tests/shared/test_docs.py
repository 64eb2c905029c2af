"""`/docs` and `/redoc` work with no internet access: every asset they name is served by the
component itself, on the services and on the gateway (whose document is the merged one)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from tests.gateway.conftest import Gateway, gw, var_dir  # noqa: F401

ASSET = re.compile(r'(?:src|href)="([^"]+)"')
URL_IN_PAGE = re.compile(r"https?://[^\s\"'<>]+")


@pytest.mark.parametrize("component", ["gateway", "scoring"])
async def test_docs_pages_name_only_local_assets(gw: Gateway, component: str) -> None:  # noqa: F811
    async with gw.platform.client(component) as c:
        for page in ("/docs", "/redoc"):
            r = await c.get(page)
            assert r.status_code == 200, r.text
            assert URL_IN_PAGE.findall(r.text) == [], f"{page} names an outside origin"
            assets = ASSET.findall(r.text)
            assert len(assets) >= 2
            for asset in assets:
                assert asset.startswith("/"), asset
                got = await c.get(asset)
                assert got.status_code == 200, asset
                assert len(got.content) > 100
                assert b"cdn.redoc.ly" not in got.content  # ReDoc's logo, replaced on serving
        spec = await c.get("/openapi.json")
        assert spec.status_code == 200 and spec.json()["paths"]


@pytest.mark.parametrize(
    "readme",
    ["shared/static/docs/README.md", "portal/static/vendor/README.md"],
)
def test_vendored_files_match_their_recorded_digests(readme: str) -> None:
    path = Path(__file__).resolve().parents[2] / readme
    rows = [line.split("|") for line in path.read_text().splitlines() if line.startswith("| ")]
    checked = 0
    for cells in rows[1:]:
        name, digest = cells[3].strip(), cells[5].strip()
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            continue
        data = (path.parent / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest, name
        checked += 1
    assert checked >= 3
