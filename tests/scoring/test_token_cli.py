"""The development token CLI: its tokens are accepted by a service that trusts its key, and
it refuses to run in production."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.auth import cli
from shared.auth.tokens import JwksCache
from tests.platform import Platform


async def test_minted_token_is_accepted_and_production_refused(
    platform: Platform,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key_file = tmp_path / "issuer.json"
    assert cli.main(["--key-file", str(key_file), "jwks"]) == 0
    jwks = json.loads(capsys.readouterr().out)
    assert all("d" not in k for k in jwks["keys"]), "the JWKS must not carry the private part"
    assert (
        cli.main(["--key-file", str(key_file), "mint", "--kind", "government", "--aud", "scoring"])
        == 0
    )
    token = capsys.readouterr().out.strip()

    await platform.start("scoring")
    # Trust the CLI's key instead of the test issuer's.
    platform.fastapi["scoring"].state.verifier.jwks = JwksCache.from_file(key_file)
    async with platform.client("scoring") as c:
        r = await c.get("/v1/indicators", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text

    # An enterprise principal without its USCC is not a principal.
    assert (
        cli.main(["--key-file", str(key_file), "mint", "--kind", "enterprise", "--aud", "scoring"])
        == 2
    )
    assert "uscc" in capsys.readouterr().err
    monkeypatch.setenv("SCORING_ENVIRONMENT", "production")
    assert (
        cli.main(["--key-file", str(key_file), "mint", "--kind", "government", "--aud", "scoring"])
        == 2
    )
    assert "refused" in capsys.readouterr().err
