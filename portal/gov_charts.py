"""ECharts options of the government pages, built on the server like `portal.charts`: data and
declarative formatters only. Regions and stages are bars; no map data is shipped."""

from __future__ import annotations

from typing import Any

from portal import labels

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#999999"]


def _text() -> dict[str, Any]:
    return {"color": "#333", "fontSize": 12}


def stage_label(code: str) -> str:
    return labels.STAGES.get(code, "未分阶段" if code == "unstaged" else code)


STAGE_ORDER = ("seed", "seedling", "growth", "expansion", "mature", "unstaged")


def by_stage_order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stages as the programme reads them, seed to mature (the API sorts by code)."""
    rank = {s: i for i, s in enumerate(STAGE_ORDER)}
    return sorted(rows, key=lambda r: rank.get(r["stage"], len(rank)))


def _bars(categories: list[str], series: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "color": PALETTE,
        "tooltip": {"trigger": "axis"},
        "legend": {"bottom": 0, "textStyle": _text()},
        "grid": {"left": 48, "right": 16, "top": 24, "bottom": 56},
        # Every category named: ECharts would otherwise drop labels it finds crowded.
        "xAxis": {
            "type": "category",
            "data": categories,
            "axisLabel": {**_text(), "interval": 0},
        },
        "yAxis": {"type": "value", "axisLabel": _text()},
        "series": series,
        **extra,
    }


def stages(overview: dict[str, Any]) -> dict[str, Any]:
    rows = by_stage_order(overview["by_stage"])
    names = [stage_label(s["stage"]) for s in rows]
    return _bars(
        names,
        [
            {"name": "已计分", "type": "bar", "stack": "n", "data": [s["scored"] for s in rows]},
            {
                "name": "未计分",
                "type": "bar",
                "stack": "n",
                "data": [s["enterprises"] - s["scored"] for s in rows],
            },
        ],
    )


def distribution(overview: dict[str, Any]) -> dict[str, Any]:
    bins = [f"{i * 10}-{i * 10 + 10}" for i in range(10)]
    series = [
        {"name": stage_label(s["stage"]), "type": "bar", "data": s["histogram"]}
        for s in overview["by_stage"]
        if s["scored"]
    ]
    return _bars(bins, series)


def tiers(overview: dict[str, Any]) -> dict[str, Any]:
    order = ["5", "4", "3", "2", "1"]
    return _bars(
        [f"第{'一二三四五'[int(t) - 1]}档" for t in order],
        [
            {
                "name": "占比(%)",
                "type": "bar",
                "data": [round((overview["tier_shares"].get(t) or 0) * 100, 1) for t in order],
                "label": {"show": True, "position": "top", "formatter": "{c}%"},
            }
        ],
    )


def funnel_steps(stats: dict[str, Any]) -> list[dict[str, Any]]:
    """scored → line at or above the base → applied → approved → disbursed, with amounts."""
    cov, t = stats["coverage"], stats["totals"]
    return [
        {"key": "scored", "name": "已计分企业", "count": cov["scored_enterprises"], "amount": None},
        {
            "key": "covered",
            "name": f"预授信≥{cov['base_amount'] // 10_000}万元",
            "count": cov["covered_enterprises"],
            "amount": cov["pre_approved_total"],
        },
        {
            "key": "applied",
            "name": "已申请",
            "count": t["enterprises_applied"],
            "amount": t["amount_requested"],
        },
        {
            "key": "approved",
            "name": "已批准",
            "count": t["approved"],
            "amount": t["amount_approved"],
        },
        {
            "key": "disbursed",
            "name": "已放款",
            "count": t["granted"],
            "amount": t["amount_granted"],
        },
    ]


def funnel(steps: list[dict[str, Any]]) -> dict[str, Any]:
    top = max([s["count"] for s in steps] + [1])
    return {
        "color": PALETTE,
        "tooltip": {"trigger": "item", "formatter": "{b}: {c}"},
        "series": [
            {
                "name": "融资漏斗",
                "type": "funnel",
                "sort": "none",
                "min": 0,
                "max": top,
                # The steps differ by orders of magnitude (hundreds scored, a few disbursed):
                # a floor on the width keeps the small ones visible and their labels legible.
                "minSize": "34%",
                "left": "8%",
                "width": "84%",
                "gap": 3,
                "label": {
                    "show": True,
                    "position": "inside",
                    "formatter": "{b}：{c}",
                    "color": "#fff",
                    "fontSize": 13,
                    "textBorderColor": "#000",
                    "textBorderWidth": 2,
                },
                "data": [{"name": s["name"], "value": s["count"]} for s in steps],
            }
        ],
    }


def coverage(stats: dict[str, Any]) -> dict[str, Any]:
    rows = [s for s in by_stage_order(stats["by_stage"]) if s["coverage"]["scored_enterprises"]]
    return _bars(
        [stage_label(s["stage"]) for s in rows],
        [
            {
                "name": "基础额度覆盖率(%)",
                "type": "bar",
                "data": [round((s["coverage"]["ratio"] or 0) * 100, 1) for s in rows],
                "label": {"show": True, "position": "top", "formatter": "{c}%"},
            }
        ],
        yAxis={"type": "value", "max": 100, "axisLabel": _text()},
    )


def whatif(result: dict[str, Any]) -> dict[str, Any]:
    keys = ["eligible", "near", "ineligible", "unknown"]
    series = [
        {
            "name": "草稿版本",
            "type": "bar",
            "data": [result["counts"].get(k, 0) for k in keys],
        }
    ]
    if result.get("published"):
        series.append(
            {
                "name": "现行版本",
                "type": "bar",
                "data": [result["published"].get(k, 0) for k in keys],
            }
        )
    return _bars([labels.MATCH_STATUS[k] for k in keys], series)
