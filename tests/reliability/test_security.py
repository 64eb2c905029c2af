"""The authorization matrix, token forgery and bad input against the assembled platform: real
processes, real logins, every request through the gateway's public port (and the services'
own ports, to show they verify tokens themselves rather than trusting the network)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from scripts.assembled import Assembled
from shared.auth.keys import generate_key
from tests.reliability.conftest import BANK_X, BANK_Y, PROBLEM, Principals, client

ISSUER = "innovation-points-gateway"
PRODUCT_OF = {
    BANK_X: "6f1c3a52-6a43-5a0e-9a4e-1c2b3d4e5f01",
    "hzub-binjiang": "6f1c3a52-6a43-5a0e-9a4e-1c2b3d4e5f02",
    BANK_Y: "6f1c3a52-6a43-5a0e-9a4e-1c2b3d4e5f03",
}


def assert_problem(r: httpx.Response, *statuses: int) -> None:
    assert r.status_code in statuses, (r.request.method, r.request.url.path, r.status_code, r.text)
    assert r.headers["content-type"].startswith(PROBLEM), r.headers["content-type"]
    body = r.json()
    assert body["status"] == r.status_code
    assert body["title"]


@pytest.fixture(scope="module")
def application_b(assembled: Assembled, principals: Principals) -> dict[str, Any]:
    """Enterprise B applies to bank Y: the one application the matrix below is about."""
    with client(assembled, principals.enterprise_b) as c:
        r = c.post(
            "/v1/credit/applications",
            json={"product_id": PRODUCT_OF[BANK_Y], "amount": 100_000},
            headers={"Idempotency-Key": f"security-{uuid.uuid4()}"},
        )
        assert r.status_code in (200, 201), r.text
        body: dict[str, Any] = r.json()
        return body


def test_anonymous_is_401_everywhere(assembled: Assembled, principals: Principals) -> None:
    a = principals.uscc_a
    paths = [
        "/v1/me",
        "/v1/me/dashboard",
        "/v1/scoring/indicators",
        f"/v1/scoring/enterprises/{a}/score",
        "/v1/scoring/rankings?stage=growth&period=2025",
        f"/v1/credit/enterprises/{a}/offers",
        "/v1/credit/applications",
        "/v1/policy/pools",
        f"/v1/policy/enterprises/{a}/matches",
    ]
    with client(assembled) as c:
        for path in paths:
            r = c.get(path)
            assert_problem(r, 401)
            assert r.headers["www-authenticate"] == "Bearer"
        assert_problem(c.post("/v1/credit/applications", json={}), 401)
    # The services behind the gateway refuse an anonymous caller on their own ports too.
    for name, path in (
        ("scoring", "/v1/indicators"),
        ("credit", "/v1/banks"),
        ("policy", "/v1/pools"),
    ):
        assert_problem(httpx.get(assembled.launcher.url(name) + path, timeout=10), 401)


def test_enterprise_never_reads_another(
    assembled: Assembled, principals: Principals, application_b: dict[str, Any]
) -> None:
    a, b = principals.uscc_a, principals.uscc_b
    with client(assembled, principals.enterprise_a) as c:
        for path in (
            f"/v1/scoring/enterprises/{a}/score",
            f"/v1/credit/enterprises/{a}/offers",
            f"/v1/policy/enterprises/{a}/matches",
            f"/v1/policy/enterprises/{a}/pushes",
        ):
            assert c.get(path).status_code == 200, path
        for path in (
            f"/v1/scoring/enterprises/{b}/score",
            f"/v1/scoring/enterprises/{b.lower()}/score",
            f"/v1/scoring/enterprises/{b}/portrait",
            f"/v1/scoring/enterprises/{b}/history",
            f"/v1/credit/enterprises/{b}/offers",
            f"/v1/credit/enterprises/{b}/approved-amounts",
            f"/v1/policy/enterprises/{b}/matches",
            f"/v1/policy/enterprises/{b}/pushes",
        ):
            assert_problem(c.get(path), 403, 404)
        # B's application: not readable, not withdrawable, not listed, whatever the filter.
        assert_problem(c.get(f"/v1/credit/applications/{application_b['id']}"), 403, 404)
        assert_problem(c.post(f"/v1/credit/applications/{application_b['id']}/withdraw"), 403, 404)
        for params in ({}, {"uscc": b}):
            r = c.get("/v1/credit/applications", params=params)
            if r.status_code == 200:
                assert all(item["uscc"] == a for item in r.json()["items"]), params
            else:
                assert_problem(r, 403, 422)
        # Identity headers of the caller's choosing change nothing.
        r = c.get(
            f"/v1/scoring/enterprises/{b}/score",
            headers={
                "X-USCC": b,
                "X-Principal": "government",
                "X-User": "admin",
                "X-Bank-Id": BANK_Y,
            },
        )
        assert_problem(r, 403)


def test_banks_see_only_their_own(
    assembled: Assembled, principals: Principals, application_b: dict[str, Any]
) -> None:
    b, c_uscc = principals.uscc_b, principals.uscc_c
    app_id = application_b["id"]
    with client(assembled, principals.bank_y) as y:
        r = y.get(f"/v1/credit/applications/{app_id}")
        assert r.status_code == 200, r.text
        assert any(i["id"] == app_id for i in y.get("/v1/credit/applications").json()["items"])
        assert y.get(f"/v1/credit/enterprises/{b}/approved-amounts").status_code == 200
    with client(assembled, principals.bank_x) as x:
        assert_problem(x.get(f"/v1/credit/applications/{app_id}"), 403, 404)
        assert_problem(x.post(f"/v1/credit/applications/{app_id}/review"), 403, 404)
        listed = x.get("/v1/credit/applications", params={"uscc": b})
        assert listed.status_code == 200, listed.text
        assert all(i["id"] != app_id for i in listed.json()["items"])
        # C consented to nobody: no score, no approved amounts for any bank.
        assert_problem(x.get(f"/v1/scoring/enterprises/{c_uscc}/score"), 403)
        assert_problem(x.get(f"/v1/credit/enterprises/{c_uscc}/approved-amounts"), 403, 404)
        # A bank cannot act as another by naming it.
        r = x.get("/v1/credit/applications", headers={"X-Bank-Id": BANK_Y})
        assert all(i["id"] != app_id for i in r.json()["items"])


def test_every_demo_bank_client_is_a_bank_the_credit_service_knows(
    assembled: Assembled,
) -> None:
    # The bank ids of the gateway's demo clients and of credit's seeded banks must agree, or
    # a bank logs in but never sees its own products' applications.
    for bank in assembled.creds["banks"]:
        token = assembled.bank_token(bank["bank_id"])
        with client(assembled, token) as c:
            r = c.get("/v1/credit/products", params={"bank_id": bank["bank_id"]})
            assert r.status_code == 200, r.text
            ids = {p["id"] for p in r.json()["items"]}
            assert PRODUCT_OF[bank["bank_id"]] in ids, bank["bank_id"]


def test_government_reads_all(
    assembled: Assembled, principals: Principals, application_b: dict[str, Any]
) -> None:
    with client(assembled, principals.government) as g:
        for uscc in (principals.uscc_a, principals.uscc_b, principals.uscc_c):
            assert g.get(f"/v1/scoring/enterprises/{uscc}/score").status_code == 200
            assert g.get(f"/v1/credit/enterprises/{uscc}/offers").status_code == 200
            assert g.get(f"/v1/policy/enterprises/{uscc}/matches").status_code == 200
        assert g.get(f"/v1/credit/applications/{application_b['id']}").status_code == 200
        assert (
            g.get("/v1/scoring/rankings", params={"stage": "growth", "period": 2025}).status_code
            == 200
        )
        assert g.get("/v1/credit/stats").status_code == 200


def _b64(d: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()


def test_forged_expired_wrong_audience_and_alg_none_refused(assembled: Assembled) -> None:
    # The gateway's real signing key, read from its key file: an expired or misaddressed token
    # signed with it is the strongest forgery there is.
    real = KeySet.import_key_set(json.loads((assembled.var / "keys" / "issuer.json").read_text()))
    real_key = next(iter(real.keys))
    kid = real_key.kid
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": "gov-portal", "kind": "government", "jti": uuid.uuid4().hex}
    header = {"alg": "ES256", "kid": kid}
    other = next(iter(KeySet([generate_key()]).keys))
    forged = jwt.encode(header, {**claims, "aud": "gateway", "exp": now + 60}, other)
    expired = jwt.encode(header, {**claims, "aud": "gateway", "exp": now - 3600}, real_key)
    for_scoring = jwt.encode(header, {**claims, "aud": "scoring", "exp": now + 60}, real_key)
    alg_none = f"{_b64({'alg': 'none', 'kid': kid})}.{_b64({**claims, 'aud': 'gateway'})}."
    hs256 = f"{_b64({'alg': 'HS256', 'kid': kid})}.{_b64({**claims, 'aud': 'gateway'})}.xx"
    bad = [forged, expired, for_scoring, alg_none, hs256, "garbage", "a.b.c"]
    with client(assembled) as c:
        for token in bad:
            r = c.get("/v1/scoring/indicators", headers={"Authorization": f"Bearer {token}"})
            assert_problem(r, 401)
        assert_problem(c.get("/v1/me", headers={"Authorization": "Basic Zm9vOmJhcg=="}), 401)
        assert_problem(
            c.get("/v1/scoring/indicators", headers={"X-Principal": "government", "X-USCC": "x"}),
            401,
        )
    # A service refuses what is not addressed to it, even when validly signed.
    scoring = assembled.launcher.url("scoring")
    for_credit = jwt.encode(header, {**claims, "aud": "credit", "exp": now + 60}, real_key)
    for token in (for_credit, alg_none, forged):
        r = httpx.get(scoring + "/v1/indicators", headers={"Authorization": f"Bearer {token}"})
        assert_problem(r, 401)
    ok = httpx.get(scoring + "/v1/indicators", headers={"Authorization": f"Bearer {for_scoring}"})
    assert ok.status_code == 200  # the control: the same key and claims, right audience


def test_oversized_malformed_and_wrongly_typed_bodies(
    assembled: Assembled, principals: Principals
) -> None:
    limit = int(assembled.launcher.extra_env["gateway"]["MAX_BODY_BYTES"])
    with client(assembled, principals.government) as g:
        big = b"x" * (limit + 1)
        assert_problem(
            g.post("/v1/scoring/imports", content=big, headers={"Content-Type": "text/csv"}), 413
        )
        # A body sent in chunks has no Content-Length to refuse early: still 413.
        chunks = (big[i : i + 65536] for i in range(0, len(big), 65536))
        r = g.post(
            "/v1/policy/policies", content=chunks, headers={"Content-Type": "application/json"}
        )
        assert_problem(r, 413)
        for path in ("/v1/policy/policies", "/v1/scoring/evaluations", "/v1/scoring/models"):
            r = g.post(
                path, content=b'{"period": 2025,', headers={"Content-Type": "application/json"}
            )
            assert_problem(r, 400, 422)
            r = g.post(path, content=b"period=2025", headers={"Content-Type": "text/plain"})
            assert_problem(r, 400, 415, 422)
        for name, content, ctype in (
            ("facts.csv", b"not,a\x00header\n\xff\xfe,,,\n", "text/csv"),
            ("facts.csv", b"uscc,period\nnot-a-code,twenty\n", "text/csv"),
            ("facts.csv", b"", "text/csv"),
            ("facts.xlsx", b"PK\x03\x04 this is no workbook", "application/vnd.ms-excel"),
        ):
            r = g.post("/v1/scoring/imports", files={"file": (name, content, ctype)})
            assert_problem(r, 400, 415, 422)
        r = g.post("/v1/scoring/imports", json={"file": "facts.csv"})
        assert_problem(r, 400, 415, 422)
    with client(assembled, principals.enterprise_a) as e:
        r = e.post(
            "/v1/credit/applications",
            content=b"{]",
            headers={"Content-Type": "application/json", "Idempotency-Key": "bad-json-1"},
        )
        assert_problem(r, 400, 422)
        r = e.post(
            "/v1/credit/applications",
            data={"product_id": PRODUCT_OF[BANK_X], "amount": "1"},
            headers={"Idempotency-Key": "form-1"},
        )
        assert_problem(r, 400, 415, 422)
    with client(assembled) as anon:
        r = anon.post(
            "/v1/auth/esso/exchange", content=b"{", headers={"Content-Type": "application/json"}
        )
        assert_problem(r, 400, 422)
        r = anon.post("/v1/auth/token", json={"grant_type": "client_credentials"})
        assert_problem(r, 400, 401, 415, 422)
