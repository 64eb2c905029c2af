"""ECharts options built on the server, embedded in the page as JSON data blocks; charts.js
draws them. Only data and declarative formatters: nothing here is executed by the browser."""

from __future__ import annotations

from typing import Any

from portal import labels

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
ENTERPRISE = "#0072B2"
MEDIAN = "#E69F00"
TOP = "#009E73"


def _axis_text() -> dict[str, Any]:
    return {"color": "#333", "fontSize": 12}


def radar(score: dict[str, Any], stats: dict[str, Any] | None) -> dict[str, Any]:
    """The four dimensions: the enterprise, the stage median and the stage's P90 (the line
    the top tier starts near: tier 5 is the top 10% of the cohort)."""
    dims = score["dimensions"]
    dim_stats = (stats or {}).get("stats", {}).get("dimensions", {})
    series: list[dict[str, Any]] = [
        {
            "name": "本企业",
            "value": [round(d["score"] or 0.0, 2) for d in dims],
            "lineStyle": {"width": 3, "color": ENTERPRISE},
            "itemStyle": {"color": ENTERPRISE},
            "areaStyle": {"color": "rgba(0,114,178,0.18)"},
        }
    ]
    if dim_stats:
        series.append(
            {
                "name": "同阶段中位数",
                "value": [
                    round((dim_stats.get(d["code"]) or {}).get("p50") or 0.0, 2) for d in dims
                ],
                "lineStyle": {"type": "dashed", "color": MEDIAN},
                "itemStyle": {"color": MEDIAN},
            }
        )
        series.append(
            {
                "name": "同阶段前10%分界(P90)",
                "value": [
                    round((dim_stats.get(d["code"]) or {}).get("p90") or 0.0, 2) for d in dims
                ],
                "lineStyle": {"type": "dotted", "color": TOP},
                "itemStyle": {"color": TOP},
            }
        )
    return {
        "color": [ENTERPRISE, MEDIAN, TOP],
        "legend": {"bottom": 0, "textStyle": _axis_text()},
        "tooltip": {"trigger": "item"},
        "radar": {
            # Room for the axis names at 375 px.
            "radius": "60%",
            "center": ["50%", "46%"],
            "indicator": [
                {"name": labels.DIMENSIONS.get(d["code"], d["code"]), "max": round(d["max"], 2)}
                for d in dims
            ],
            "axisName": {"color": "#222", "fontSize": 12},
        },
        "series": [{"type": "radar", "data": series}],
    }


def trend(history: list[dict[str, Any]]) -> dict[str, Any]:
    scored = [h for h in history if h.get("scored") and h.get("total") is not None]
    return {
        "color": [ENTERPRISE],
        "tooltip": {"trigger": "axis"},
        "grid": {"left": 40, "right": 16, "top": 24, "bottom": 32},
        "xAxis": {
            "type": "category",
            "data": [f"{h['period']}年度" for h in scored],
            "axisLabel": _axis_text(),
        },
        "yAxis": {"type": "value", "min": 0, "max": 100, "axisLabel": _axis_text()},
        "series": [
            {
                "name": "总分",
                "type": "line",
                "data": [round(h["total"], 2) for h in scored],
                "label": {"show": True, "position": "top", "formatter": "{c}"},
                "symbolSize": 8,
            }
        ],
    }
