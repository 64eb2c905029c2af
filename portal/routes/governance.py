"""Model governance pages (模型治理): `/gov/models` for government staff, `/bank/models` for bank
officers. Both read the same aggregate validation through the gateway with the person's own
token (scoring decides who may read it): ROC and KS curves, bad rate by tier, PSI over
periods, the tier migration heat map, and the fairness flags. Charts follow portal.charts:
ECharts options built here as data, drawn by static/js/charts.js (no inline script).
"""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from portal import labels
from portal.deps import Gateway, require_staff
from portal.gateway import GatewayProblem
from portal.sessions import Session
from portal.web import render

router = APIRouter()

GovSession = Annotated[Session, Depends(require_staff("government"))]
BankSession = Annotated[Session, Depends(require_staff("bank"))]
Version = Annotated[str | None, Query(max_length=32, pattern=r"^[0-9A-Za-z._-]{1,32}$")]
Period = Annotated[int | None, Query(ge=2000, le=2100)]
BLUE, ORANGE, GREEN, GREY = "#0072B2", "#E69F00", "#009E73", "#999999"


def default_period(today: date | None = None) -> int:
    """The latest period whose 12-month observation window is over (docs/governance.md)."""
    return (today or date.today()).year - 2


def _text() -> dict[str, Any]:
    return {"color": "#333", "fontSize": 12}


def roc_chart(curve: dict[str, Any]) -> dict[str, Any]:
    points = [[round(f, 4), round(t, 4)] for f, t in zip(curve["fpr"], curve["tpr"], strict=True)]
    return {
        "color": [BLUE, GREY],
        "tooltip": {"trigger": "item"},
        "grid": {"left": 48, "right": 16, "top": 16, "bottom": 48},
        "xAxis": {
            "type": "value",
            "min": 0,
            "max": 1,
            "name": "良好企业累计占比",
            "nameLocation": "middle",
            "nameGap": 28,
            "axisLabel": _text(),
        },
        "yAxis": {
            "type": "value",
            "min": 0,
            "max": 1,
            "name": "不良企业累计占比",
            "axisLabel": _text(),
        },
        "series": [
            {"name": "ROC", "type": "line", "data": points, "showSymbol": False},
            {
                "name": "随机",
                "type": "line",
                "data": [[0, 0], [1, 1]],
                "showSymbol": False,
                "lineStyle": {"type": "dashed"},
            },
        ],
    }


def ks_chart(curve: dict[str, Any]) -> dict[str, Any]:
    share = [round(s, 4) for s in curve["population_share"]]
    return {
        "color": [ORANGE, GREEN, BLUE],
        "tooltip": {"trigger": "axis"},
        "legend": {"bottom": 0, "textStyle": _text()},
        "grid": {"left": 48, "right": 16, "top": 16, "bottom": 56},
        "xAxis": {
            "type": "value",
            "min": 0,
            "max": 1,
            "name": "企业累计占比（分数由低到高）",
            "nameLocation": "middle",
            "nameGap": 28,
            "axisLabel": _text(),
        },
        "yAxis": {"type": "value", "min": 0, "max": 1, "axisLabel": _text()},
        "series": [
            {
                "name": "不良",
                "type": "line",
                "showSymbol": False,
                "data": [[x, round(t, 4)] for x, t in zip(share, curve["tpr"], strict=True)],
            },
            {
                "name": "良好",
                "type": "line",
                "showSymbol": False,
                "data": [[x, round(f, 4)] for x, f in zip(share, curve["fpr"], strict=True)],
            },
            {
                "name": "KS",
                "type": "line",
                "showSymbol": False,
                "data": [
                    [x, round(t - f, 4)]
                    for x, t, f in zip(share, curve["tpr"], curve["fpr"], strict=True)
                ],
            },
        ],
    }


def tiers_chart(tiers: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "color": [BLUE],
        "tooltip": {"trigger": "axis"},
        "grid": {"left": 48, "right": 16, "top": 24, "bottom": 32},
        "xAxis": {
            "type": "category",
            "data": [f"{t['tier']}档" for t in tiers],
            "axisLabel": _text(),
        },
        "yAxis": {"type": "value", "name": "不良率", "axisLabel": _text()},
        "series": [
            {
                "name": "不良率",
                "type": "bar",
                "data": [None if t["bad_rate"] is None else round(t["bad_rate"], 4) for t in tiers],
                "label": {"show": True, "position": "top"},
            }
        ],
    }


def psi_chart(history: list[dict[str, Any]]) -> dict[str, Any]:
    points = [h for h in history if h.get("psi") is not None]
    return {
        "color": [BLUE],
        "tooltip": {"trigger": "axis"},
        "grid": {"left": 48, "right": 16, "top": 24, "bottom": 32},
        "xAxis": {
            "type": "category",
            "data": [f"{h['period']}年度" for h in points],
            "axisLabel": _text(),
        },
        "yAxis": {"type": "value", "min": 0, "axisLabel": _text()},
        "series": [
            {
                "name": "PSI",
                "type": "line",
                "data": [round(h["psi"], 4) for h in points],
                "label": {"show": True, "position": "top"},
                "markLine": {
                    "symbol": "none",
                    "data": [{"yAxis": 0.1, "name": "关注"}, {"yAxis": 0.25, "name": "行动"}],
                },
            }
        ],
    }


def migration_chart(migration: dict[str, Any]) -> dict[str, Any]:
    tiers = [f"{t}档" for t in migration["tiers"]]
    cells = [
        [j, i, count] for i, row in enumerate(migration["counts"]) for j, count in enumerate(row)
    ]
    return {
        "tooltip": {"position": "top"},
        "grid": {"left": 64, "right": 16, "top": 16, "bottom": 72},
        "xAxis": {"type": "category", "data": tiers, "name": "本期", "axisLabel": _text()},
        "yAxis": {"type": "category", "data": tiers, "name": "上期", "axisLabel": _text()},
        "visualMap": {
            "min": 0,
            "max": max((c[2] for c in cells), default=1) or 1,
            "calculable": True,
            "orient": "horizontal",
            "left": "center",
            "bottom": 0,
            "inRange": {"color": ["#f7fbff", BLUE]},
        },
        "series": [{"name": "企业数", "type": "heatmap", "data": cells, "label": {"show": True}}],
    }


def flagged_groups(fairness: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The (grouping, metric, group) triples flagged, for the table under the charts."""
    out = []
    for report in fairness:
        for metric in report["metrics"]:
            for g in metric["groups"]:
                if g.get("flagged"):
                    out.append({"grouping": report["grouping"], "metric": metric["metric"], **g})
    return out


def _charts(v: dict[str, Any], history: list[dict[str, Any]]) -> dict[str, Any]:
    charts: dict[str, Any] = {"tiers": tiers_chart(v["tiers"]), "psi": psi_chart(history)}
    disc = v.get("discrimination")
    if disc:
        charts["roc"], charts["ks"] = roc_chart(disc["curve"]), ks_chart(disc["curve"])
    if v.get("migration"):
        charts["migration"] = migration_chart(v["migration"])
    return charts


async def _page(
    request: Request, session: Session, gw: Any, area: str, version: str | None, period: int | None
) -> HTMLResponse:
    models = await gw.get(session, "/v1/scoring/models", {"limit": 50})
    published = [m for m in models["items"] if m["status"] == "published"]
    latest = max(published, key=lambda m: m["published_at"] or "", default=None)
    version = version or (latest["version"] if latest else "1.0")
    period = period or default_period()
    problem: GatewayProblem | None = None
    validation: dict[str, Any] | None = None
    try:
        validation, history = await asyncio.gather(
            gw.get(session, f"/v1/scoring/models/{version}/validation", {"period": period}),
            gw.get(session, f"/v1/scoring/models/{version}/validations"),
        )
    except GatewayProblem as exc:
        problem, history = exc, list[dict[str, Any]]()
    return render(
        request,
        "governance/models.html",
        {
            "section": "models",
            "area": area,
            "version": version,
            "period": period,
            "periods": [default_period() + 1 - i for i in range(4)],
            "models": published,
            "v": validation,
            "problem": labels.problem_text(problem.status, problem.slug) if problem else None,
            "history": history,
            "charts": _charts(validation, history) if validation else {},
            "flags": flagged_groups(validation["fairness"]) if validation else [],
        },
    )


@router.get("/gov/models", response_class=HTMLResponse)
async def gov_models(
    request: Request,
    session: GovSession,
    gw: Gateway,
    version: Version = None,
    period: Period = None,
) -> HTMLResponse:
    return await _page(request, session, gw, "gov", version, period)


@router.get("/bank/models", response_class=HTMLResponse)
async def bank_models(
    request: Request,
    session: BankSession,
    gw: Gateway,
    version: Version = None,
    period: Period = None,
) -> HTMLResponse:
    return await _page(request, session, gw, "bank", version, period)
