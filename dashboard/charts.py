"""The dashboard's charts as plain Vega-Lite specs for `st.vega_lite_chart`.

Streamlit's `st.line_chart`/`st.bar_chart` and Altair build the same JSON through Altair's
JSON-schema validation: ~100 ms of CPU for one line chart, most of a page view (profiled with
pyinstrument, see README). A dict costs nothing to build. Charts with two y axes carry a legend
naming each series and its axis; a series is drawn in the same colour everywhere.
"""

from __future__ import annotations

import json

BLUE, RED, GREY = "#4c78a8", "#e45756", "#9d9d9d"


def _x(field: str, title: str, kind: str = "temporal") -> dict:
    return {"field": field, "type": kind, "title": title}


def _legend(names: list[str], colours: list[str]) -> dict:
    """A colour channel whose legend lists `names` (the layers say which one they are)."""
    return {
        "type": "nominal",
        "scale": {"domain": names, "range": colours},
        "legend": {"title": None, "orient": "top"},
    }


def lines(x: str, x_title: str, series: dict[str, str], y_title: str) -> dict:
    """One line per column of `series` ({column: label}) on one y axis, with a legend."""
    names = list(series.values())
    return {
        "transform": [
            {"fold": list(series), "as": ["series", "value"]},
            {"calculate": f"{json.dumps(series)}[datum.series]", "as": "label"},
        ],
        "mark": {"type": "line", "tooltip": True},
        "encoding": {
            "x": _x(x, x_title),
            "y": {"field": "value", "type": "quantitative", "title": y_title},
            "color": {"field": "label", **_legend(names, [BLUE, RED][: len(names)])},
        },
    }


def bars_and_line(
    x: str, x_title: str, bar: tuple[str, str], line: tuple[str, str], bar_right: bool = False
) -> dict:
    """Bars (`bar` = (column, label)) and a line on two independent y axes, with a legend."""
    names = [bar[1], line[1]]
    colour = _legend(names, [BLUE, RED])

    def layer(mark: dict, column: str, label: str, right: bool) -> dict:
        axis = {"orient": "right"} if right else {}
        return {
            "mark": {**mark, "tooltip": True},
            "encoding": {
                "x": _x(x, x_title),
                "y": {"field": column, "type": "quantitative", "title": label, "axis": axis},
                "color": {"datum": label, **colour},
            },
        }

    return {
        "layer": [
            layer({"type": "bar", "opacity": 0.45}, *bar, bar_right),
            layer({"type": "line"}, *line, not bar_right),
        ],
        "resolve": {"scale": {"y": "independent"}},
    }


def scatter(x: str, x_title: str, y: str, y_title: str) -> dict:
    return {
        "mark": {"type": "circle", "opacity": 0.6, "tooltip": True},
        "encoding": {
            "x": {"field": x, "type": "quantitative", "title": x_title},
            "y": {"field": y, "type": "quantitative", "title": y_title},
        },
    }


def ranked_bars(category: str, value: str, value_title: str) -> dict:
    """Horizontal bars, the largest value on top."""
    return {
        "mark": {"type": "bar", "tooltip": True, "color": RED},
        "encoding": {
            "y": {"field": category, "type": "nominal", "title": None, "sort": "-x"},
            "x": {"field": value, "type": "quantitative", "title": value_title},
        },
    }
