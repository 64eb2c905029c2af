"""Scores to read: a small cohort imported and evaluated through the gateway, as the
government portal would."""

from __future__ import annotations

from stdnum.cn import uscc as uscc_std

from tests.gateway.conftest import ENTERPRISE_A, ENTERPRISE_B, ENTERPRISE_C, Gateway

HEADER = (
    "uscc,name,period,operating_revenue,rd_expense,rd_intensity,invention_patents,listed,"
    "qualifications"
)


def code(i: int) -> str:
    base = f"91330108{i:09d}"
    return base + uscc_std.calc_check_digit(base)


async def publish_scores(gw: Gateway, period: int = 2025) -> None:
    rows = [
        f"{e['uscc']},{e['name']},{period},{1200 + 40 * i},{150 + 10 * i},12.5,{i},0,hnte"
        for i, e in enumerate((ENTERPRISE_A, ENTERPRISE_B, ENTERPRISE_C))
    ]
    rows += [
        f"{code(i)},杭州测试{i}号科技有限公司,{period},{900 + 37 * i},{60 + 9 * i},{5 + i % 20},"
        f"{i % 7},0,"
        for i in range(1, 40)
    ]
    content = ("\n".join([HEADER, *rows]) + "\n").encode()
    token = await gw.government()
    async with gw.client(token) as gov:
        r = await gov.post(
            "/v1/scoring/imports", files={"file": ("facts.csv", content, "text/csv")}
        )
        assert r.status_code == 201, r.text
        r = await gov.post("/v1/scoring/evaluations", json={"period": period, "wait": True})
        assert r.status_code == 201, r.text
        run_id = r.json()["id"]
        r = await gov.post(f"/v1/scoring/evaluations/{run_id}/publish")
        assert r.status_code == 200, r.text
