"""Generate OpenQoE's Grafana dashboards (``deploy/grafana/dashboards/*.json``).

    python -m deploy.grafana.build_dashboards           # write the files
    python -m deploy.grafana.build_dashboards --check   # exit 1 if a file differs

The JSON files are committed; ``tests/unit/test_dashboards.py`` checks they equal this
generator's output, checks them against Grafana's own types (``check_types.py``) and
lints them (``validate.py``), and
``tests/integration/test_dashboard_queries.py`` runs every PromQL query against a real
Prometheus fed by the real pipeline.

Conventions:
- Datasources are the dashboard variables ``DS_PROMETHEUS`` and ``DS_LOKI``: no uids.
- QoE series carry a ``partition`` label (see docs/metrics.md); every query aggregates.
- Raw-series rates use ``$__rate_interval``; totals over the picked range use
  ``$__range`` in instant queries. Recording rules (deploy/prometheus/rules) are used where
  one exists for the panel's question; they are aggregated by org and env only, so those
  panels say so and do not follow the app, device and player filters.
- Units: seconds (``s``), ratios 0-1 (``percentunit``), bits per second (``bps``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

Json = dict[str, Any]

HERE = Path(__file__).resolve().parent
OUT_DIR = HERE / "dashboards"
SCHEMA_VERSION = 39

PROMETHEUS: Json = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
LOKI: Json = {"type": "loki", "uid": "${DS_LOKI}"}

# Label selectors. Multi-value variables expand to regexes; "All" is ".*".
OE = 'org=~"$org", env=~"$env"'
F = OE + ', app=~"$app", device=~"$device", player=~"$player"'
VOD = F + ', stream_type!="live"'
LIVE = F + ', stream_type="live"'
# The same filters on Loki lines: stream labels are org, env, kind only; the view's other
# dimensions are in the JSON line ("labels" object, flattened by | json).
LOKI_FILTERS = ' | labels_app=~"$app" | labels_device=~"$device" | labels_player=~"$player"'

GREEN, ORANGE, RED, BLUE = "green", "orange", "red", "blue"


# --- targets ------------------------------------------------------------------------------


def prom(expr: str, legend: str = "", *, instant: bool = False, fmt: str = "time_series") -> Json:
    return {
        "datasource": PROMETHEUS,
        "editorMode": "code",
        "expr": expr,
        "format": fmt,
        "instant": instant,
        "legendFormat": legend or "__auto",
        "range": not instant,
    }


def loki(expr: str, legend: str = "", *, instant: bool = False) -> Json:
    target: Json = {
        "datasource": LOKI,
        "editorMode": "code",
        "expr": expr,
        "queryType": "instant" if instant else "range",
    }
    if legend:
        target["legendFormat"] = legend
    return target


# --- field config and panels --------------------------------------------------------------


def steps(*pairs: tuple[str, float | None]) -> Json:
    return {
        "mode": "absolute",
        "steps": [{"color": color, "value": value} for color, value in pairs],
    }


NEUTRAL = steps((BLUE, None))
LOW_IS_GOOD_RATIO = steps((GREEN, None), (ORANGE, 0.01), (RED, 0.05))
REBUFFER_RATIO = steps((GREEN, None), (ORANGE, 0.005), (RED, 0.02))
STARTUP_S = steps((GREEN, None), (ORANGE, 2), (RED, 3))
HIGH_IS_GOOD_RATIO = steps((RED, None), (ORANGE, 0.25), (GREEN, 0.5))
SCORE = steps((RED, None), (ORANGE, 50), (GREEN, 75))


def field_config(
    unit: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    decimals: int | None = None,
    thresholds: Json | None = None,
    color: str = "thresholds",
    mappings: list[Json] | None = None,
    custom: Json | None = None,
    overrides: list[Json] | None = None,
) -> Json:
    defaults: Json = {
        "unit": unit,
        "color": {"mode": color},
        "thresholds": thresholds or NEUTRAL,
        "mappings": mappings or [],
    }
    if minimum is not None:
        defaults["min"] = minimum
    if maximum is not None:
        defaults["max"] = maximum
    if decimals is not None:
        defaults["decimals"] = decimals
    if custom is not None:
        defaults["custom"] = custom
    return {"defaults": defaults, "overrides": overrides or []}


def reduce_options(calc: str = "lastNotNull") -> Json:
    return {"values": False, "calcs": [calc], "fields": ""}


def _panel(kind: str, title: str, description: str, targets: list[Json], **extra: Any) -> Json:
    datasource = targets[0]["datasource"] if targets else PROMETHEUS
    panel: Json = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": datasource,
        "targets": [{"refId": chr(ord("A") + i), **target} for i, target in enumerate(targets)],
    }
    panel.update(extra)
    return panel


def timeseries(
    title: str,
    description: str,
    targets: list[Json],
    unit: str,
    *,
    minimum: float | None = 0,
    maximum: float | None = None,
    thresholds: Json | None = None,
    stack: bool = False,
    overrides: list[Json] | None = None,
    decimals: int | None = None,
) -> Json:
    custom = {
        "drawStyle": "line",
        "lineWidth": 1,
        "fillOpacity": 20 if stack else 10,
        "gradientMode": "none",
        "showPoints": "never",
        "spanNulls": False,
        "axisPlacement": "auto",
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
        "thresholdsStyle": {"mode": "off" if thresholds is None else "dashed"},
    }
    return _panel(
        "timeseries",
        title,
        description,
        targets,
        fieldConfig=field_config(
            unit,
            minimum=minimum,
            maximum=maximum,
            decimals=decimals,
            thresholds=thresholds,
            color="palette-classic",
            custom=custom,
            overrides=overrides,
        ),
        options={
            "legend": {
                "showLegend": True,
                "displayMode": "list",
                "placement": "bottom",
                "calcs": [],
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    )


def stat(
    title: str,
    description: str,
    targets: list[Json],
    unit: str,
    *,
    thresholds: Json | None = None,
    decimals: int | None = None,
    calc: str = "lastNotNull",
    mappings: list[Json] | None = None,
) -> Json:
    return _panel(
        "stat",
        title,
        description,
        targets,
        fieldConfig=field_config(unit, decimals=decimals, thresholds=thresholds, mappings=mappings),
        options={
            "reduceOptions": reduce_options(calc),
            "colorMode": "value",
            "graphMode": "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "textMode": "auto",
        },
    )


def gauge(title: str, description: str, targets: list[Json], unit: str, thresholds: Json) -> Json:
    return _panel(
        "gauge",
        title,
        description,
        targets,
        fieldConfig=field_config(unit, minimum=0, maximum=1, thresholds=thresholds),
        options={
            "reduceOptions": reduce_options(),
            "showThresholdLabels": False,
            "showThresholdMarkers": True,
        },
    )


def bargauge(
    title: str,
    description: str,
    targets: list[Json],
    unit: str,
    *,
    thresholds: Json | None = None,
    minimum: float | None = 0,
    maximum: float | None = None,
    decimals: int | None = None,
) -> Json:
    return _panel(
        "bargauge",
        title,
        description,
        targets,
        fieldConfig=field_config(
            unit, minimum=minimum, maximum=maximum, decimals=decimals, thresholds=thresholds
        ),
        options={
            "reduceOptions": reduce_options(),
            "orientation": "horizontal",
            "displayMode": "gradient",
            "showUnfilled": True,
            "valueMode": "color",
        },
    )


def piechart(title: str, description: str, targets: list[Json], unit: str = "short") -> Json:
    return _panel(
        "piechart",
        title,
        description,
        targets,
        fieldConfig=field_config(unit, color="palette-classic", decimals=0),
        options={
            "reduceOptions": reduce_options(),
            "pieType": "donut",
            "legend": {
                "showLegend": True,
                "displayMode": "table",
                "placement": "right",
                "values": ["value", "percent"],
                "calcs": [],
            },
            "tooltip": {"mode": "single", "sort": "none"},
        },
    )


def heatmap(title: str, description: str, targets: list[Json], y_unit: str) -> Json:
    return _panel(
        "heatmap",
        title,
        description,
        targets,
        fieldConfig=field_config("short"),
        options={
            "calculate": False,
            "cellGap": 1,
            "color": {
                "mode": "scheme",
                "scheme": "Oranges",
                "steps": 64,
                "exponent": 0.5,
                "fill": "dark-orange",
                "reverse": False,
            },
            "yAxis": {"axisPlacement": "left", "unit": y_unit},
            "rowsFrame": {"layout": "auto"},
            "legend": {"show": True},
            "tooltip": {"mode": "single", "yHistogram": False},
            "cellValues": {"unit": "short"},
        },
    )


def table(title: str, description: str, targets: list[Json], unit: str) -> Json:
    return _panel(
        "table",
        title,
        description,
        targets,
        fieldConfig=field_config(unit),
        # No "footer": Grafana 12's table panel dropped it (not in its Options type).
        options={"showHeader": True, "cellHeight": "sm"},
    )


def logs(title: str, description: str, expr: str) -> Json:
    return _panel(
        "logs",
        title,
        description,
        [loki(expr)],
        options={
            "showTime": True,
            "showLabels": False,
            "showCommonLabels": False,
            "wrapLogMessage": True,
            "prettifyLogMessage": False,
            "enableLogDetails": True,
            "dedupStrategy": "none",
            "sortOrder": "Descending",
        },
    )


def right_axis(ref_id: str, unit: str) -> Json:
    """Override: the series of query ``ref_id`` on a second (right) axis with ``unit``."""
    return {
        "matcher": {"id": "byFrameRefID", "options": ref_id},
        "properties": [
            {"id": "unit", "value": unit},
            {"id": "custom.axisPlacement", "value": "right"},
        ],
    }


# --- dashboard assembly -------------------------------------------------------------------


def datasource_variable(name: str, plugin: str, label: str) -> Json:
    return {
        "type": "datasource",
        "name": name,
        "label": label,
        "query": plugin,
        "regex": "",
        "hide": 0,
        "refresh": 1,
        "multi": False,
        "includeAll": False,
        "options": [],
    }


def query_variable(
    name: str, label: str, metric: str, selector: str = "", *, label_name: str = ""
) -> Json:
    """A multi-value variable over the values of ``label_name`` (default: ``name``)."""
    series = f"{metric}{{{selector}}}" if selector else metric
    # No "definition" (the editor's display copy of the query): Grafana's Dashboard type has none.
    return {
        "type": "query",
        "name": name,
        "label": label,
        "datasource": PROMETHEUS,
        "query": {
            "qryType": 1,
            "query": f"label_values({series}, {label_name or name})",
            "refId": "PrometheusVariableQueryEditor-VariableQuery",
        },
        "regex": "",
        "hide": 0,
        "refresh": 2,
        "sort": 1,
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
    }


def textbox_variable(name: str, label: str, default: str) -> Json:
    return {
        "type": "textbox",
        "name": name,
        "label": label,
        "query": default,
        "hide": 0,
        "current": {"selected": False, "text": default, "value": default},
        "options": [{"selected": True, "text": default, "value": default}],
    }


def qoe_variables(with_loki: bool = True) -> list[Json]:
    metric = "openqoe_views_started_total"
    variables = [datasource_variable("DS_PROMETHEUS", "prometheus", "Prometheus / Mimir")]
    if with_loki:
        variables.append(datasource_variable("DS_LOKI", "loki", "Loki"))
    variables += [
        query_variable("org", "Organisation", metric),
        query_variable("env", "Environment", metric, 'org=~"$org"'),
        query_variable("app", "App", metric, 'org=~"$org", env=~"$env"'),
        query_variable("device", "Device", metric, 'org=~"$org", env=~"$env"'),
        query_variable("player", "Player", metric, 'org=~"$org", env=~"$env"'),
    ]
    return variables


class Board:
    """Lays panels out left to right in rows of 24 columns and numbers them."""

    def __init__(self) -> None:
        self.panels: list[Json] = []
        self._x = 0
        self._y = 0
        self._line_h = 0

    def _newline(self) -> None:
        self._y += self._line_h
        self._x = 0
        self._line_h = 0

    def row(self, title: str) -> None:
        self._newline()
        self._place({"type": "row", "title": title, "collapsed": False, "panels": []}, 24, 1)
        self._newline()

    def stat(self, title: str, description: str, expr: str, unit: str, **options: Any) -> None:
        """A small (4x4) stat panel of one instant PromQL query, the dashboards' headline tiles."""
        self.add(stat(title, description, [prom(expr, instant=True)], unit, **options), 4, 4)

    def add(self, panel: Json, w: int, h: int = 8) -> None:
        if self._x + w > 24:
            self._newline()
        self._place(panel, w, h)

    def _place(self, panel: Json, w: int, h: int) -> None:
        panel_id = len(self.panels) + 1
        ordered = {"id": panel_id, "gridPos": {"h": h, "w": w, "x": self._x, "y": self._y}}
        self.panels.append({**ordered, **panel})
        self._x += w
        self._line_h = max(self._line_h, h)


def dashboard(
    *,
    uid: str,
    title: str,
    description: str,
    board: Board,
    variables: list[Json],
    time_from: str,
    refresh: str,
) -> Json:
    return {
        "annotations": {"list": []},
        "description": description,
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [
            {
                "type": "dashboards",
                "title": "OpenQoE",
                "tags": ["openqoe"],
                "asDropdown": True,
                "includeVars": False,
                "keepTime": True,
                "icon": "external link",
                "targetBlank": False,
                "tooltip": "",
                "url": "",
            }
        ],
        "liveNow": False,
        "panels": board.panels,
        "refresh": refresh,
        "schemaVersion": SCHEMA_VERSION,
        "tags": ["openqoe"],
        "templating": {"list": variables},
        "time": {"from": time_from, "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "title": title,
        "uid": uid,
        "version": 1,
        "weekStart": "",
    }


# --- shared query fragments ---------------------------------------------------------------


def q(fn: str, metric: str, selector: str, window: str) -> str:
    return f"{fn}({metric}{{{selector}}}[{window}])"


def _sum(by: str) -> str:
    return f"sum by ({by}) " if by else "sum"


def total(metric: str, selector: str, by: str = "") -> str:
    """Increase over the dashboard's time range (instant queries)."""
    return f"{_sum(by)}({q('increase', metric, selector, '$__range')})"


def rate(metric: str, selector: str, by: str = "") -> str:
    return f"{_sum(by)}({q('rate', metric, selector, '$__rate_interval')})"


def quantile(
    phi: float, histogram: str, selector: str, *, by: str = "", window: str = "$__rate_interval"
) -> str:
    grouping = f"{by}, le" if by else "le"
    inner = q("rate", f"{histogram}_bucket", selector, window)
    return f"histogram_quantile({phi}, sum by ({grouping}) ({inner}))"


def mean(histogram: str, selector: str, *, window: str = "$__rate_interval", by: str = "") -> str:
    fn = "rate" if window == "$__rate_interval" else "increase"
    return (
        f"{_sum(by)}({q(fn, f'{histogram}_sum', selector, window)})"
        f" / {_sum(by)}({q(fn, f'{histogram}_count', selector, window)})"
    )


def ratio(numerator: str, denominator: str) -> str:
    return f"{numerator}\n/\n{denominator}"


def quartile_reached(selector: str, quartile: int, fn: str = "total") -> str:
    """Views that reached at least ``quartile`` % (completion is a multiple of 0.25)."""
    below = {25: "0.0", 50: "0.25", 75: "0.5", 100: "0.75"}[quartile]
    agg = total if fn == "total" else rate
    count = agg("openqoe_view_completion_ratio_count", selector)
    under = agg("openqoe_view_completion_ratio_bucket", f'{selector}, le="{below}"')
    return f"({count} - {under})"


def failure_ratio(selector: str, window: str = "range") -> str:
    agg = total if window == "range" else rate
    return ratio(
        agg("openqoe_playback_failures_total", selector),
        agg("openqoe_views_ended_total", selector),
    )


def completion_ratio(selector: str, window: str = "range", by: str = "") -> str:
    agg = total if window == "range" else rate
    return ratio(
        agg("openqoe_views_completed_total", selector, by),
        agg("openqoe_views_ended_total", f'{selector}, outcome="played"', by),
    )


def rebuffer_ratio(selector: str, window: str = "range", by: str = "") -> str:
    agg = total if window == "range" else rate
    return ratio(
        agg("openqoe_rebuffer_time_seconds_total", selector, by),
        agg("openqoe_watch_time_seconds_total", selector, by),
    )


def error_log_query(extra: str = "") -> str:
    return (
        '{kind="error", org=~"$org", env=~"$env"} | json' + extra + LOKI_FILTERS + " | line_format "
        '"{{.error_error_family}} {{.error_error_code}}: {{.error_error_message}}'
        " | view={{.view_id}} {{.labels_stream_type}} {{.labels_device}}/{{.labels_player}}"
        ' app={{.labels_app}} cdn={{.labels_cdn}} country={{.labels_country}}"'
    )


def view_log_query(extra: str = "") -> str:
    return (
        '{kind="view", org=~"$org", env=~"$env"} | json' + LOKI_FILTERS + extra + " | line_format "
        '"{{.outcome}} startup={{.video_startup_time_ms}}ms watch={{.watch_time_ms}}ms'
        " rebuffers={{.rebuffer_count}} ({{.rebuffer_duration_ms}}ms)"
        " bitrate={{.average_bitrate_bps}}bps completion={{.completion_ratio}}"
        " score={{.score_overall}} | view={{.view_id}} video={{.video_id}}"
        ' {{.labels_stream_type}} {{.labels_device}}/{{.labels_player}}"'
    )


def loki_views(extra: str = "") -> str:
    return '{kind="view", org=~"$org", env=~"$env"} | json' + LOKI_FILTERS + extra


# --- the dashboards -----------------------------------------------------------------------


def vod_monitoring() -> Json:
    b = Board()
    v = VOD
    b.row("Overview (VOD: every view whose stream_type is not live)")
    b.stat(
        "Views started",
        "Play attempts started in the time range.",
        total("openqoe_views_started_total", v),
        "short",
        decimals=0,
    )
    b.add(
        gauge(
            "Completion rate",
            "Views that reached the end of the content / views that played (ended with a "
            "first frame), in the time range.",
            [prom(completion_ratio(v), instant=True)],
            "percentunit",
            HIGH_IS_GOOD_RATIO,
        ),
        4,
        4,
    )
    b.stat(
        "Mean video startup time",
        "Mean time from play request to first frame of the views that ended in the range.",
        mean("openqoe_video_startup_seconds", v, window="$__range"),
        "s",
        thresholds=STARTUP_S,
        decimals=2,
    )
    b.stat(
        "Playback failure rate",
        "Views ended by a fatal (non-business) error / views ended, in the time range.",
        failure_ratio(v),
        "percentunit",
        thresholds=LOW_IS_GOOD_RATIO,
        decimals=2,
    )
    b.add(
        stat(
            "Exit before video start",
            "Views that ended without a first frame, a failure or a business error / views "
            "ended, in the time range.",
            [
                prom(
                    ratio(
                        total("openqoe_views_ended_total", v + ', outcome="exited_before_start"'),
                        total("openqoe_views_ended_total", v),
                    ),
                    instant=True,
                )
            ],
            "percentunit",
            thresholds=LOW_IS_GOOD_RATIO,
            decimals=2,
        ),
        4,
        4,
    )
    b.stat(
        "Rebuffer ratio",
        "Rebuffering time / watch time of the views that ended in the range.",
        rebuffer_ratio(v),
        "percentunit",
        thresholds=REBUFFER_RATIO,
        decimals=2,
    )

    b.row("Video startup time")
    b.add(
        timeseries(
            "Video startup time percentiles",
            "Play request to first frame, per view, observed when the view ends.",
            [
                prom(quantile(0.5, "openqoe_video_startup_seconds", v), "p50"),
                prom(quantile(0.95, "openqoe_video_startup_seconds", v), "p95"),
                prom(quantile(0.99, "openqoe_video_startup_seconds", v), "p99"),
            ],
            "s",
            thresholds=STARTUP_S,
        ),
        12,
    )
    b.add(
        heatmap(
            "Video startup time distribution",
            "Views per startup-time bucket (buckets 0.1 s ... 60 s).",
            [
                prom(
                    "sum by (le) ("
                    + q("increase", "openqoe_video_startup_seconds_bucket", v, "$__rate_interval")
                    + ")",
                    "{{le}}",
                    fmt="heatmap",
                )
            ],
            "s",
        ),
        12,
    )
    b.add(
        bargauge(
            "Video startup time p95 by device",
            "95th percentile over the time range, by device category.",
            [
                prom(
                    quantile(
                        0.95, "openqoe_video_startup_seconds", v, by="device", window="$__range"
                    ),
                    "{{device}}",
                    instant=True,
                )
            ],
            "s",
            thresholds=STARTUP_S,
        ),
        12,
        7,
    )
    b.add(
        bargauge(
            "Video startup time p95 by player",
            "95th percentile over the time range, by player (SDK adapter).",
            [
                prom(
                    quantile(
                        0.95, "openqoe_video_startup_seconds", v, by="player", window="$__range"
                    ),
                    "{{player}}",
                    instant=True,
                )
            ],
            "s",
            thresholds=STARTUP_S,
        ),
        12,
        7,
    )

    b.row("Rebuffering")
    b.add(
        timeseries(
            "Rebuffer ratio over time",
            "Rebuffering time / watch time (startup and seek waits are not rebuffering).",
            [prom(rebuffer_ratio(v, "rate"), "rebuffer ratio")],
            "percentunit",
            thresholds=REBUFFER_RATIO,
        ),
        6,
    )
    b.add(
        timeseries(
            "Rebuffer frequency",
            "Rebuffering stalls per minute of watch time.",
            [
                prom(
                    ratio(
                        "60 * " + rate("openqoe_rebuffer_events_total", v),
                        rate("openqoe_watch_time_seconds_total", v),
                    ),
                    "stalls per minute watched",
                )
            ],
            "short",
        ),
        6,
    )
    b.add(
        timeseries(
            "Rebuffering time per view",
            "Total rebuffering time of one view, over views that started.",
            [
                prom(quantile(0.5, "openqoe_view_rebuffer_duration_seconds", v), "p50"),
                prom(quantile(0.95, "openqoe_view_rebuffer_duration_seconds", v), "p95"),
            ],
            "s",
        ),
        6,
    )
    b.add(
        stat(
            "Rebuffering stalls",
            "Rebuffering stalls that ended in the time range.",
            [prom(total("openqoe_rebuffer_events_total", v), instant=True)],
            "short",
            decimals=0,
        ),
        6,
    )

    b.row("Failures")
    b.add(
        timeseries(
            "Failure and exit rates",
            "Share of ended views: playback failures, exits before video start and business "
            "exceptions (e.g. entitlement).",
            [
                prom(failure_ratio(v, "rate"), "playback failures"),
                prom(
                    ratio(
                        rate("openqoe_views_ended_total", v + ', outcome="exited_before_start"'),
                        rate("openqoe_views_ended_total", v),
                    ),
                    "exit before video start",
                ),
                prom(
                    ratio(
                        rate("openqoe_business_exceptions_total", v),
                        rate("openqoe_views_ended_total", v),
                    ),
                    "business exceptions",
                ),
            ],
            "percentunit",
        ),
        12,
    )
    b.add(
        piechart(
            "Fatal failures by error family",
            "Views ended by a fatal error in the time range, by error family and stage.",
            [
                prom(
                    total("openqoe_playback_failures_total", v, "error_family, stage"),
                    "{{error_family}} ({{stage}})",
                    instant=True,
                )
            ],
        ),
        6,
    )
    b.add(
        piechart(
            "Non-fatal errors by family",
            'Errors the player recovered from ("fatal": false) in the time range.',
            [
                prom(
                    total("openqoe_playback_errors_total", v, "error_family"),
                    "{{error_family}}",
                    instant=True,
                )
            ],
        ),
        6,
    )
    b.add(
        logs(
            "Recent fatal errors",
            "One Loki line per fatal error (stream labels org, env, kind; ids are structured "
            "metadata).",
            error_log_query(' | labels_stream_type!="live"'),
        ),
        24,
        8,
    )

    b.row("Quality")
    b.add(
        timeseries(
            "Average bitrate per view",
            "Playing-time-weighted average rendition bitrate of each view: mean and percentiles.",
            [
                prom(mean("openqoe_view_average_bitrate_bps", v), "mean"),
                prom(quantile(0.5, "openqoe_view_average_bitrate_bps", v), "p50"),
                prom(quantile(0.1, "openqoe_view_average_bitrate_bps", v), "p10"),
            ],
            "bps",
        ),
        8,
    )
    b.add(
        bargauge(
            "Views by average bitrate",
            "Views that ended in the range per average-bitrate bucket (upper bound, bps).",
            [
                prom(
                    total("openqoe_view_average_bitrate_bps_bucket", v, "le"),
                    "{{le}}",
                    instant=True,
                    fmt="heatmap",
                )
            ],
            "short",
            decimals=0,
        ),
        8,
    )
    b.add(
        timeseries(
            "Bitrate switches",
            "Rendition changes per second, up and down.",
            [prom(rate("openqoe_bitrate_switches_total", v, "direction"), "{{direction}}")],
            "cps",
        ),
        8,
    )
    b.add(
        piechart(
            "Resolution (last rendition height)",
            "Views that ended in the range by the height of their last rendition (Loki view "
            "summaries).",
            [
                loki(
                    "sum by (last_height) (count_over_time("
                    + loki_views(' | labels_stream_type!="live" | last_height!=""')
                    + " [$__range]))",
                    "{{last_height}}p",
                    instant=True,
                )
            ],
        ),
        12,
    )
    b.add(
        timeseries(
            "Dropped frames per view",
            "Mean of the highest dropped-frame count each view reported (Loki view summaries).",
            [
                loki(
                    "avg(avg_over_time("
                    + loki_views(' | labels_stream_type!="live"')
                    + ' | unwrap dropped_frames | __error__="" [$__interval]))',
                    "dropped frames per view",
                )
            ],
            "short",
        ),
        12,
    )

    b.row("Engagement")
    b.add(
        bargauge(
            "Quartile funnel",
            "Share of started views that reached 25 / 50 / 75 / 100 % of the content.",
            [
                prom(
                    ratio(
                        quartile_reached(v, quarter),
                        total("openqoe_view_completion_ratio_count", v),
                    ),
                    f"{quarter}%",
                    instant=True,
                )
                for quarter in (25, 50, 75, 100)
            ],
            "percentunit",
            maximum=1,
        ),
        12,
    )
    b.add(
        piechart(
            "Views by device",
            "Views started in the time range, by device category.",
            [prom(total("openqoe_views_started_total", v, "device"), "{{device}}", instant=True)],
        ),
        6,
    )
    b.add(
        piechart(
            "Views by outcome",
            "Views ended in the time range: played, failed, exited before start, business "
            "exception.",
            [prom(total("openqoe_views_ended_total", v, "outcome"), "{{outcome}}", instant=True)],
        ),
        6,
    )
    return dashboard(
        uid="openqoe-vod",
        title="OpenQoE - VOD Monitoring",
        description="On-demand playback: startup, rebuffering, failures, quality, engagement.",
        board=b,
        variables=qoe_variables(),
        time_from="now-6h",
        refresh="30s",
    )


def live_streaming() -> Json:
    b = Board()
    v = LIVE
    b.row('Live now (views whose video.stream_type is "live")')
    b.add(
        stat(
            "Current viewers",
            "Live views loading, playing or rebuffering with an event in the last two "
            "heartbeat intervals.",
            [prom(f"sum(openqoe_concurrent_viewers{{{v}}})", instant=True)],
            "short",
            decimals=0,
        ),
        4,
        4,
    )
    b.add(
        stat(
            "Peak viewers",
            "Highest concurrent live viewers in the time range.",
            [prom(f"sum(openqoe_concurrent_viewers{{{v}}})", "viewers")],
            "short",
            decimals=0,
            calc="max",
        ),
        4,
        4,
    )
    b.stat(
        "Live views started",
        "Live play attempts started in the time range.",
        total("openqoe_views_started_total", v),
        "short",
        decimals=0,
    )
    b.add(
        stat(
            "Median join time",
            "Median video startup time (play request to first frame) of live views.",
            [
                prom(
                    quantile(0.5, "openqoe_video_startup_seconds", v, window="$__range"),
                    instant=True,
                )
            ],
            "s",
            thresholds=STARTUP_S,
            decimals=2,
        ),
        4,
        4,
    )
    b.stat(
        "Live failure rate",
        "Live views ended by a fatal error / live views ended, in the time range.",
        failure_ratio(v),
        "percentunit",
        thresholds=LOW_IS_GOOD_RATIO,
        decimals=2,
    )
    b.stat(
        "Live rebuffer ratio",
        "Rebuffering time / watch time of live views, in the time range.",
        rebuffer_ratio(v),
        "percentunit",
        thresholds=REBUFFER_RATIO,
        decimals=2,
    )

    b.row("Viewership")
    b.add(
        timeseries(
            "Concurrent viewers by device",
            "Concurrent live viewers, stacked by device category.",
            [prom(f"sum by (device) (openqoe_concurrent_viewers{{{v}}})", "{{device}}")],
            "short",
            stack=True,
            decimals=0,
        ),
        12,
    )
    b.add(
        piechart(
            "Live views by device",
            "Live views started in the time range, by device category.",
            [prom(total("openqoe_views_started_total", v, "device"), "{{device}}", instant=True)],
        ),
        6,
    )
    b.add(
        bargauge(
            "Live views by country (top 10)",
            "Live views started in the time range by viewer country (ISO code, lower case).",
            [
                prom(
                    "topk(10, " + total("openqoe_views_started_total", v, "country") + ")",
                    "{{country}}",
                    instant=True,
                )
            ],
            "short",
            decimals=0,
        ),
        6,
    )

    b.row("Performance")
    b.add(
        timeseries(
            "Join time",
            "Video startup time of live views, observed when the view ends.",
            [
                prom(quantile(0.5, "openqoe_video_startup_seconds", v), "p50"),
                prom(quantile(0.95, "openqoe_video_startup_seconds", v), "p95"),
            ],
            "s",
            thresholds=STARTUP_S,
        ),
        8,
    )
    b.add(
        timeseries(
            "Live rebuffer ratio over time",
            "Rebuffering time / watch time of live views.",
            [prom(rebuffer_ratio(v, "rate"), "live")],
            "percentunit",
            thresholds=REBUFFER_RATIO,
        ),
        8,
    )
    b.add(
        timeseries(
            "Rebuffer ratio by stream type (org/env level)",
            "Recording rule openqoe:rebuffer_ratio_by_stream_type:5m, live next to vod: "
            "filtered by org and env only.",
            [
                prom(
                    f"openqoe:rebuffer_ratio_by_stream_type:5m{{{OE}}}",
                    "{{org}} {{env}} {{stream_type}}",
                )
            ],
            "percentunit",
            thresholds=REBUFFER_RATIO,
        ),
        8,
    )
    b.add(
        timeseries(
            "Live average bitrate per view",
            "Playing-time-weighted average bitrate of live views: mean and percentiles.",
            [
                prom(mean("openqoe_view_average_bitrate_bps", v), "mean"),
                prom(quantile(0.5, "openqoe_view_average_bitrate_bps", v), "p50"),
                prom(quantile(0.95, "openqoe_view_average_bitrate_bps", v), "p95"),
            ],
            "bps",
        ),
        12,
    )
    b.add(
        timeseries(
            "Live failures by error family",
            "Live views ended by a fatal error, per second, by family.",
            [
                prom(
                    rate("openqoe_playback_failures_total", v, "error_family"),
                    "{{error_family}}",
                )
            ],
            "cps",
        ),
        12,
    )
    b.add(
        logs(
            "Recent live errors",
            "Fatal errors of live views (Loki).",
            error_log_query(' | labels_stream_type="live"'),
        ),
        24,
        8,
    )
    return dashboard(
        uid="openqoe-live",
        title="OpenQoE - Live Streaming",
        description="Live events: concurrent viewers, join time, rebuffering, failures.",
        board=b,
        variables=qoe_variables(),
        time_from="now-15m",
        refresh="10s",
    )


def quality_delivery() -> Json:
    b = Board()
    b.row("Org overview (recording rules: filtered by org and env only)")
    b.add(
        timeseries(
            "Video startup time (org/env)",
            "Recording rules openqoe:video_startup_seconds:p50_5m / p95_5m / p99_5m / mean_5m.",
            [
                prom(f"openqoe:video_startup_seconds:p50_5m{{{OE}}}", "p50 {{org}} {{env}}"),
                prom(f"openqoe:video_startup_seconds:p95_5m{{{OE}}}", "p95 {{org}} {{env}}"),
                prom(f"openqoe:video_startup_seconds:p99_5m{{{OE}}}", "p99 {{org}} {{env}}"),
                prom(f"openqoe:video_startup_seconds:mean_5m{{{OE}}}", "mean {{org}} {{env}}"),
            ],
            "s",
            thresholds=STARTUP_S,
        ),
        8,
    )
    b.add(
        timeseries(
            "Failure ratios (org/env)",
            "Recording rules: playback failures, failures before start and exits before video "
            "start, each / views ended.",
            [
                prom(f"openqoe:playback_failure_ratio:5m{{{OE}}}", "failures {{org}} {{env}}"),
                prom(
                    f"openqoe:startup_failure_ratio:5m{{{OE}}}",
                    "startup failures {{org}} {{env}}",
                ),
                prom(f"openqoe:exit_before_start_ratio:5m{{{OE}}}", "EBVS {{org}} {{env}}"),
            ],
            "percentunit",
        ),
        8,
    )
    b.add(
        timeseries(
            "Failure ratio by error family (org/env)",
            "Recording rule openqoe:playback_failure_ratio_by_family:5m: failures of each "
            "family / all views ended.",
            [
                prom(
                    f"openqoe:playback_failure_ratio_by_family:5m{{{OE}}}",
                    "{{error_family}} {{org}} {{env}}",
                )
            ],
            "percentunit",
        ),
        8,
    )
    b.add(
        timeseries(
            "Rebuffering (org/env)",
            "Recording rules openqoe:rebuffer_ratio:5m (left, rebuffering time / watch time) and "
            "openqoe:rebuffer_events_per_minute:5m (right, stalls per minute watched).",
            [
                prom(f"openqoe:rebuffer_ratio:5m{{{OE}}}", "ratio {{org}} {{env}}"),
                prom(
                    f"openqoe:rebuffer_events_per_minute:5m{{{OE}}}",
                    "stalls/min {{org}} {{env}}",
                ),
            ],
            "percentunit",
            thresholds=REBUFFER_RATIO,
            overrides=[right_axis("B", "short")],
        ),
        8,
    )
    b.add(
        timeseries(
            "p95 latencies (org/env)",
            "Recording rules: player startup, seek latency and rebuffering time per view, "
            "95th percentile.",
            [
                prom(
                    f"openqoe:player_startup_seconds:p95_5m{{{OE}}}",
                    "player startup {{org}} {{env}}",
                ),
                prom(
                    f"openqoe:seek_latency_seconds:p95_5m{{{OE}}}", "seek latency {{org}} {{env}}"
                ),
                prom(
                    f"openqoe:view_rebuffer_duration_seconds:p95_5m{{{OE}}}",
                    "rebuffering per view {{org}} {{env}}",
                ),
            ],
            "s",
        ),
        8,
    )
    b.add(
        timeseries(
            "Mean experience scores (org/env)",
            "Recording rule openqoe:view_score:mean_15m (0-100, per view, by component).",
            [prom(f"openqoe:view_score:mean_15m{{{OE}}}", "{{component}} {{org}} {{env}}")],
            "none",
            maximum=100,
            thresholds=SCORE,
        ),
        12,
    )
    b.add(
        timeseries(
            "Average bitrate and downshifts (org/env)",
            "Recording rules openqoe:average_bitrate_bps:mean_5m (left) and "
            "openqoe:bitrate_downshifts:rate5m (right, per second).",
            [
                prom(f"openqoe:average_bitrate_bps:mean_5m{{{OE}}}", "bitrate {{org}} {{env}}"),
                prom(f"openqoe:bitrate_downshifts:rate5m{{{OE}}}", "downshifts/s {{org}} {{env}}"),
            ],
            "bps",
            overrides=[right_axis("B", "cps")],
        ),
        12,
    )

    b.row("Player")
    b.add(
        timeseries(
            "Player startup and page load",
            "As reported by the player in playerready.",
            [
                prom(quantile(0.5, "openqoe_player_startup_seconds", F), "player startup p50"),
                prom(quantile(0.95, "openqoe_player_startup_seconds", F), "player startup p95"),
                prom(quantile(0.5, "openqoe_page_load_seconds", F), "page load p50"),
                prom(quantile(0.95, "openqoe_page_load_seconds", F), "page load p95"),
            ],
            "s",
        ),
        8,
    )
    b.add(
        timeseries(
            "Seek latency",
            "Seek latency as reported by the player.",
            [
                prom(quantile(0.5, "openqoe_seek_latency_seconds", F), "p50"),
                prom(quantile(0.95, "openqoe_seek_latency_seconds", F), "p95"),
            ],
            "s",
        ),
        8,
    )
    b.add(
        bargauge(
            "Video startup time p95 by device (org/env)",
            "Recording rule openqoe:video_startup_seconds_by_device:p95_5m (org, env and "
            "device filters).",
            [
                prom(
                    f'openqoe:video_startup_seconds_by_device:p95_5m{{{OE}, device=~"$device"}}',
                    "{{device}} {{org}} {{env}}",
                    instant=True,
                )
            ],
            "s",
            thresholds=STARTUP_S,
        ),
        8,
    )

    b.row("Delivery by CDN")
    b.add(
        bargauge(
            "Video startup time p95 by CDN",
            "95th percentile over the time range, by CDN provider.",
            [
                prom(
                    quantile(0.95, "openqoe_video_startup_seconds", F, by="cdn", window="$__range"),
                    "{{cdn}}",
                    instant=True,
                )
            ],
            "s",
            thresholds=STARTUP_S,
        ),
        8,
    )
    b.add(
        bargauge(
            "Rebuffer ratio by CDN",
            "Rebuffering time / watch time over the time range, by CDN provider.",
            [prom(rebuffer_ratio(F, by="cdn"), "{{cdn}}", instant=True)],
            "percentunit",
            thresholds=REBUFFER_RATIO,
        ),
        8,
    )
    b.add(
        bargauge(
            "Playback failure rate by CDN",
            "Views ended by a fatal error / views ended over the time range, by CDN provider.",
            [
                prom(
                    ratio(
                        total("openqoe_playback_failures_total", F, "cdn"),
                        total("openqoe_views_ended_total", F, "cdn"),
                    ),
                    "{{cdn}}",
                    instant=True,
                )
            ],
            "percentunit",
            thresholds=LOW_IS_GOOD_RATIO,
        ),
        8,
    )

    b.row("Adaptive bitrate")
    b.add(
        timeseries(
            "Bitrate switches",
            "Rendition changes per second, by direction.",
            [prom(rate("openqoe_bitrate_switches_total", F, "direction"), "{{direction}}")],
            "cps",
        ),
        8,
    )
    b.add(
        stat(
            "Upshift / downshift ratio",
            "Switches to a higher bitrate per switch to a lower one, in the time range.",
            [
                prom(
                    ratio(
                        total("openqoe_bitrate_switches_total", F + ', direction="up"'),
                        total("openqoe_bitrate_switches_total", F + ', direction="down"'),
                    ),
                    instant=True,
                )
            ],
            "none",
            decimals=2,
        ),
        4,
    )
    b.add(
        stat(
            "Switches per played view",
            "Rendition changes / views that played, in the time range.",
            [
                prom(
                    ratio(
                        total("openqoe_bitrate_switches_total", F),
                        total("openqoe_views_ended_total", F + ', outcome="played"'),
                    ),
                    instant=True,
                )
            ],
            "none",
            decimals=2,
        ),
        4,
    )
    b.add(
        bargauge(
            "Views by average bitrate",
            "Views that ended in the range per average-bitrate bucket (upper bound, bps).",
            [
                prom(
                    total("openqoe_view_average_bitrate_bps_bucket", F, "le"),
                    "{{le}}",
                    instant=True,
                    fmt="heatmap",
                )
            ],
            "short",
            decimals=0,
        ),
        8,
    )
    b.add(
        timeseries(
            "Mean experience scores",
            "Per-view scores (0-100) by component: playback success, startup, smoothness, "
            "video quality (rendition vs 1080 lines) and overall.",
            [prom(mean("openqoe_view_score", F, by="component"), "{{component}}")],
            "none",
            maximum=100,
            thresholds=SCORE,
        ),
        12,
    )
    b.add(
        heatmap(
            "Overall score distribution",
            "Views per overall-score bucket.",
            [
                prom(
                    "sum by (le) ("
                    + q(
                        "increase",
                        "openqoe_view_score_bucket",
                        F + ', component="overall"',
                        "$__rate_interval",
                    )
                    + ")",
                    "{{le}}",
                    fmt="heatmap",
                )
            ],
            "none",
        ),
        12,
    )

    b.row("Buffering")
    b.add(
        bargauge(
            "Rebuffering stalls per view",
            "Views that started and ended in the range, per number of stalls (upper bound).",
            [
                prom(
                    total("openqoe_view_rebuffers_bucket", F, "le"),
                    "{{le}}",
                    instant=True,
                    fmt="heatmap",
                )
            ],
            "short",
            decimals=0,
        ),
        8,
    )
    b.add(
        timeseries(
            "Rebuffering time per view",
            "Total rebuffering time of one view, over views that started.",
            [
                prom(quantile(0.5, "openqoe_view_rebuffer_duration_seconds", F), "p50"),
                prom(quantile(0.95, "openqoe_view_rebuffer_duration_seconds", F), "p95"),
            ],
            "s",
        ),
        8,
    )
    b.add(
        timeseries(
            "Dropped frames per view",
            "Mean of the highest dropped-frame count each view reported (Loki view summaries).",
            [
                loki(
                    "avg(avg_over_time("
                    + loki_views()
                    + ' | unwrap dropped_frames | __error__="" [$__interval]))',
                    "dropped frames per view",
                )
            ],
            "short",
        ),
        8,
    )

    b.row("Logs")
    b.add(
        logs(
            "Views with problems",
            "Per-view summaries (Loki) of views that rebuffered, failed or exited before start.",
            view_log_query(' | rebuffer_count > 0 or failed="true" or exited_before_start="true"'),
        ),
        12,
        10,
    )
    b.add(
        logs(
            "Recent fatal errors",
            "One Loki line per fatal error.",
            error_log_query(),
        ),
        12,
        10,
    )
    return dashboard(
        uid="openqoe-quality",
        title="OpenQoE - Quality & Delivery",
        description="Technical deep-dive: startup, seeking, CDN, adaptive bitrate, buffering.",
        board=b,
        variables=qoe_variables(),
        time_from="now-6h",
        refresh="30s",
    )


def impact_explorer() -> Json:
    b = Board()
    revenue = "$revenue_per_watch_hour"
    watch = "openqoe_watch_time_seconds_total"
    b.row("Business overview")
    b.add(
        stat(
            "Total watch time",
            "Startup, playing, rebuffering and seek time of the views that ended in the range "
            "(pauses excluded).",
            [prom(total(watch, F), instant=True)],
            "s",
        ),
        4,
        4,
    )
    b.stat(
        "Mean watch time per view",
        "Watch time per ended view, averaged over the range.",
        mean("openqoe_view_watch_time_seconds", F, window="$__range"),
        "s",
    )
    b.add(
        gauge(
            "Completion rate",
            "Views that reached the end / views that played, in the time range.",
            [prom(completion_ratio(F), instant=True)],
            "percentunit",
            HIGH_IS_GOOD_RATIO,
        ),
        4,
        4,
    )
    b.stat(
        "Estimated revenue",
        "Watch hours in the range x the revenue per watch hour variable (USD).",
        f"{total(watch, F)} / 3600 * {revenue}",
        "currencyUSD",
        decimals=2,
    )
    b.stat(
        "Views started",
        "Play attempts started in the time range.",
        total("openqoe_views_started_total", F),
        "short",
        decimals=0,
    )
    b.add(
        stat(
            "Mean overall score",
            "Mean overall experience score (0-100) of the views that ended in the range.",
            [
                prom(
                    mean("openqoe_view_score", F + ', component="overall"', window="$__range"),
                    instant=True,
                )
            ],
            "none",
            thresholds=SCORE,
            decimals=1,
        ),
        4,
        4,
    )

    b.row("Org overview (recording rules: filtered by org and env only)")
    b.add(
        timeseries(
            "Views started and ended (org/env)",
            "Recording rules openqoe:views_started:rate5m and openqoe:views_ended:rate5m.",
            [
                prom(f"openqoe:views_started:rate5m{{{OE}}}", "started {{org}} {{env}}"),
                prom(f"openqoe:views_ended:rate5m{{{OE}}}", "ended {{org}} {{env}}"),
            ],
            "cps",
        ),
        8,
    )
    b.add(
        timeseries(
            "Watch time rate (org/env)",
            "Recording rule openqoe:watch_time_seconds:rate5m: seconds watched per second.",
            [prom(f"openqoe:watch_time_seconds:rate5m{{{OE}}}", "{{org}} {{env}}")],
            "short",
        ),
        8,
    )
    b.add(
        timeseries(
            "Concurrent viewers (org/env)",
            "Recording rules openqoe:concurrent_viewers:sum and "
            "openqoe:concurrent_viewers_by_device:sum (device filter applies).",
            [
                prom(f"openqoe:concurrent_viewers:sum{{{OE}}}", "all {{org}} {{env}}"),
                prom(
                    f'openqoe:concurrent_viewers_by_device:sum{{{OE}, device=~"$device"}}',
                    "{{device}} {{org}} {{env}}",
                ),
            ],
            "short",
            decimals=0,
        ),
        8,
    )

    b.row("Trends")
    b.add(
        timeseries(
            "Watch time rate",
            "Seconds watched per second: the average number of people watching.",
            [prom(rate(watch, F), "watch time")],
            "short",
        ),
        12,
    )
    b.add(
        timeseries(
            "Views started, ended and completed",
            "Views per second.",
            [
                prom(rate("openqoe_views_started_total", F), "started"),
                prom(rate("openqoe_views_ended_total", F), "ended"),
                prom(rate("openqoe_views_completed_total", F), "completed"),
            ],
            "cps",
        ),
        12,
    )
    b.add(
        timeseries(
            "Estimated revenue rate",
            "Watch hours per hour x revenue per watch hour: USD per hour.",
            [prom(f"{rate(watch, F)} * {revenue}", "USD per hour")],
            "currencyUSD",
        ),
        12,
    )
    b.add(
        timeseries(
            "Quartiles reached",
            "Views per second that reached 25 / 50 / 75 / 100 % of the content (by view end).",
            [
                prom(quartile_reached(F, quarter, "rate"), f"{quarter}%")
                for quarter in (25, 50, 75, 100)
            ],
            "cps",
        ),
        12,
    )

    b.row("Breakdowns")
    b.add(
        bargauge(
            "Completion rate by device (org/env)",
            "Recording rule openqoe:completion_ratio_by_device:1h (org, env and device filters).",
            [
                prom(
                    f'openqoe:completion_ratio_by_device:1h{{{OE}, device=~"$device"}}',
                    "{{device}} {{org}} {{env}}",
                    instant=True,
                )
            ],
            "percentunit",
            thresholds=HIGH_IS_GOOD_RATIO,
            maximum=1,
        ),
        8,
    )
    b.add(
        bargauge(
            "Watch time by app",
            "Watch time of the views that ended in the range, by app.",
            [prom(total(watch, F, "app"), "{{app}}", instant=True)],
            "s",
        ),
        8,
    )
    b.add(
        piechart(
            "Views by stream type",
            "Views started in the time range: vod, live, or unknown when the player does not say.",
            [
                prom(
                    total("openqoe_views_started_total", F, "stream_type"),
                    "{{stream_type}}",
                    instant=True,
                )
            ],
        ),
        8,
    )

    b.row("Quality impact")
    b.add(
        timeseries(
            "Startup time vs completion",
            "p95 video startup time (left) and completion rate (right).",
            [
                prom(quantile(0.95, "openqoe_video_startup_seconds", F), "startup p95"),
                prom(completion_ratio(F, "rate"), "completion rate"),
            ],
            "s",
            overrides=[right_axis("B", "percentunit")],
        ),
        12,
    )
    b.add(
        timeseries(
            "Rebuffering vs watch time",
            "Rebuffer ratio (left) and mean watch time per view (right).",
            [
                prom(rebuffer_ratio(F, "rate"), "rebuffer ratio"),
                prom(mean("openqoe_view_watch_time_seconds", F), "watch time per view"),
            ],
            "percentunit",
            overrides=[right_axis("B", "s")],
        ),
        12,
    )
    b.add(
        bargauge(
            "Completion by startup time",
            "Mean completion of views by their own startup time (Loki view summaries: a "
            "per-view correlation).",
            [
                loki(
                    "avg(avg_over_time("
                    + loki_views(f" | video_startup_time_ms <= {limit}")
                    + ' | unwrap completion_ratio | __error__="" [$__range]))',
                    f"startup <= {limit // 1000} s",
                    instant=True,
                )
                for limit in (1000, 2000)
            ]
            + [
                loki(
                    "avg(avg_over_time("
                    + loki_views(" | video_startup_time_ms > 2000")
                    + ' | unwrap completion_ratio | __error__="" [$__range]))',
                    "startup > 2 s",
                    instant=True,
                )
            ],
            "percentunit",
            maximum=1,
        ),
        12,
    )
    b.add(
        bargauge(
            "Watch time by rebuffering",
            "Mean watch time of views with and without rebuffering (Loki view summaries).",
            [
                loki(
                    "avg(avg_over_time("
                    + loki_views(f" | rebuffer_count {op} 0")
                    + ' | unwrap watch_time_ms | __error__="" [$__range])) / 1000',
                    legend,
                    instant=True,
                )
                for op, legend in (("==", "no rebuffering"), (">", "with rebuffering"))
            ],
            "s",
        ),
        12,
    )

    b.row("Content (Loki view summaries; video ids are never metric labels)")
    b.add(
        table(
            "Top videos by watch time",
            "Watch time per video in the range.",
            [
                loki(
                    "topk(15, sum by (video_id) (sum_over_time("
                    + loki_views()
                    + ' | unwrap watch_time_ms | __error__="" [$__range]))) / 1000',
                    "{{video_id}}",
                    instant=True,
                )
            ],
            "s",
        ),
        12,
        9,
    )
    b.add(
        table(
            "Lowest completion",
            "Mean completion per video in the range (the 15 lowest).",
            [
                loki(
                    "bottomk(15, avg by (video_id) (avg_over_time("
                    + loki_views()
                    + ' | unwrap completion_ratio | __error__="" [$__range])))',
                    "{{video_id}}",
                    instant=True,
                )
            ],
            "percentunit",
        ),
        12,
        9,
    )
    b.add(
        logs(
            "Per-view summaries",
            "One Loki line per ended view (the qoe.views summary).",
            view_log_query(),
        ),
        24,
        10,
    )
    return dashboard(
        uid="openqoe-impact",
        title="OpenQoE - Impact Explorer",
        description="Business impact: watch time, completion, revenue, quality vs engagement.",
        board=b,
        variables=[
            *qoe_variables(),
            textbox_variable("revenue_per_watch_hour", "Revenue per watch hour (USD)", "0.005"),
        ],
        time_from="now-7d",
        refresh="1m",
    )


def pipeline_health() -> Json:
    b = Board()
    c = 'instance=~"$collector"'
    p = 'instance=~"$processor"'
    events = f'handler="events", {c}'
    b.row("Overview (recording rules: every collector and processor)")
    b.stat(
        "Events accepted",
        "openqoe:ingest_events_accepted:rate5m: events acknowledged by Kafka per second.",
        "openqoe:ingest_events_accepted:rate5m",
        "cps",
        decimals=1,
    )
    b.stat(
        "Events rejected",
        "sum of openqoe:ingest_events_rejected_by_reason:rate5m: events refused per second.",
        "sum(openqoe:ingest_events_rejected_by_reason:rate5m)",
        "cps",
        decimals=2,
        thresholds=steps((GREEN, None), (ORANGE, 1)),
    )
    b.stat(
        "HTTP 5xx ratio",
        "openqoe:ingest_http_5xx_ratio:5m: share of /v1/events answers that were 5xx.",
        "openqoe:ingest_http_5xx_ratio:5m",
        "percentunit",
        decimals=2,
        thresholds=steps((GREEN, None), (ORANGE, 0.001), (RED, 0.01)),
    )
    b.stat(
        "Request duration p99",
        "openqoe:ingest_request_duration_seconds:p99_5m (/v1/events).",
        "openqoe:ingest_request_duration_seconds:p99_5m",
        "s",
        decimals=3,
        thresholds=steps((GREEN, None), (ORANGE, 0.25), (RED, 1)),
    )
    b.stat(
        "Processor events",
        "openqoe:processor_events:rate5m: raw-topic messages handled per second.",
        "openqoe:processor_events:rate5m",
        "cps",
        decimals=1,
    )
    b.stat(
        "Processor lag",
        "openqoe:processor_lag_messages:sum: raw-topic messages not yet processed.",
        "openqoe:processor_lag_messages:sum",
        "short",
        decimals=0,
        thresholds=steps((GREEN, None), (ORANGE, 1000), (RED, 100000)),
    )

    b.row("Collector")
    b.add(
        stat(
            "Kafka ready",
            "Per collector instance: 1 when its producer is connected to Kafka.",
            [prom(f"openqoe_ingest_kafka_ready{{{c}}}", "{{instance}}", instant=True)],
            "none",
            thresholds=steps((RED, None), (GREEN, 1)),
            mappings=[
                {
                    "type": "value",
                    "options": {
                        "0": {"text": "not ready", "color": RED, "index": 0},
                        "1": {"text": "ready", "color": GREEN, "index": 1},
                    },
                }
            ],
        ),
        12,
        4,
    )
    b.add(
        stat(
            "Scrape targets up",
            'Prometheus "up" of the scrape jobs openqoe-collector and openqoe-processor.',
            [
                prom(
                    'up{job=~"openqoe-collector|openqoe-processor"}',
                    "{{job}} {{instance}}",
                    instant=True,
                )
            ],
            "none",
            thresholds=steps((RED, None), (GREEN, 1)),
            mappings=[
                {
                    "type": "value",
                    "options": {
                        "0": {"text": "down", "color": RED, "index": 0},
                        "1": {"text": "up", "color": GREEN, "index": 1},
                    },
                }
            ],
        ),
        12,
        4,
    )
    b.add(
        timeseries(
            "Requests by handler and code",
            "HTTP answers per second.",
            [
                prom(
                    rate("openqoe_ingest_http_requests_total", c, "handler, code"),
                    "{{handler}} {{code}}",
                )
            ],
            "reqps",
        ),
        12,
    )
    b.add(
        timeseries(
            "Error answers by code",
            "Answers of /v1/events that were not 2xx (4xx: client problems, 429: overload, "
            "503: Kafka did not acknowledge).",
            [
                prom(
                    rate("openqoe_ingest_http_requests_total", f'{events}, code!~"2.."', "code"),
                    "{{code}}",
                )
            ],
            "reqps",
        ),
        12,
    )
    b.add(
        timeseries(
            "Events accepted by type",
            "Events acknowledged by Kafka per second.",
            [
                prom(
                    rate("openqoe_ingest_events_accepted_total", c, "event_type"),
                    "{{event_type}}",
                )
            ],
            "cps",
            stack=True,
        ),
        8,
    )
    b.add(
        timeseries(
            "Events rejected by reason",
            "Recording rule openqoe:ingest_events_rejected_by_reason:rate5m (validation codes, "
            "rate_limited, overloaded, kafka_unavailable).",
            [prom("openqoe:ingest_events_rejected_by_reason:rate5m", "{{reason}}")],
            "cps",
        ),
        8,
    )
    b.add(
        timeseries(
            "In flight",
            "Events parsed but not yet acknowledged by Kafka, and requests being handled.",
            [
                prom(f"sum(openqoe_ingest_in_flight_events{{{c}}})", "events"),
                prom(f"sum(openqoe_ingest_in_flight_requests{{{c}}})", "requests"),
            ],
            "short",
        ),
        8,
    )
    b.add(
        timeseries(
            "Request duration (/v1/events)",
            "Request start to response.",
            [
                prom(quantile(0.5, "openqoe_ingest_http_request_duration_seconds", events), "p50"),
                prom(quantile(0.99, "openqoe_ingest_http_request_duration_seconds", events), "p99"),
            ],
            "s",
        ),
        12,
    )
    b.add(
        timeseries(
            "Kafka produce latency",
            "From handing a request's events to the producer until Kafka acknowledged all.",
            [
                prom(quantile(0.5, "openqoe_ingest_produce_duration_seconds", c), "p50"),
                prom(quantile(0.99, "openqoe_ingest_produce_duration_seconds", c), "p99"),
            ],
            "s",
        ),
        12,
    )

    b.row("Processor")
    b.add(
        timeseries(
            "Messages by topic and outcome",
            "Messages handled per second (raw: new, applied, closed, late, duplicate, replayed, "
            "ignored, purged, undecodable; ctl: view-expiry requests).",
            [
                prom(
                    rate("openqoe_processor_messages_total", p, "topic, outcome"),
                    "{{topic}} {{outcome}}",
                )
            ],
            "cps",
        ),
        12,
    )
    b.add(
        timeseries(
            "Lag by partition",
            "Raw-topic messages not yet processed, per partition (reported by its owner).",
            [
                prom(
                    f"sum by (partition) (openqoe_processor_lag_messages{{{p}}})",
                    "partition {{partition}}",
                )
            ],
            "short",
        ),
        12,
    )
    b.add(
        timeseries(
            "Flush duration",
            "Snapshot, make durable and queue one export.",
            [
                prom(quantile(0.5, "openqoe_processor_flush_duration_seconds", p), "p50"),
                prom(quantile(0.99, "openqoe_processor_flush_duration_seconds", p), "p99"),
            ],
            "s",
        ),
        8,
    )
    b.add(
        timeseries(
            "Exported series",
            "Series in the last remote-write export, per worker.",
            [prom(f"sum by (instance) (openqoe_processor_exported_series{{{p}}})", "{{instance}}")],
            "short",
        ),
        8,
    )
    b.add(
        timeseries(
            "Late and duplicate events",
            "Events for views that had ended (late) and repeated event ids (duplicate): "
            "processor outcomes, and the remote-written QoE counters by org.",
            [
                prom(
                    rate(
                        "openqoe_processor_messages_total",
                        f'{p}, topic="raw", outcome=~"late|duplicate"',
                        "outcome",
                    ),
                    "{{outcome}} (processor)",
                ),
                prom(
                    "sum by (org) (rate(openqoe_late_events_total[$__rate_interval]))",
                    "late {{org}}",
                ),
                prom(
                    "sum by (org) (rate(openqoe_duplicate_events_total[$__rate_interval]))",
                    "duplicate {{org}}",
                ),
            ],
            "cps",
        ),
        8,
    )

    b.row("Outputs: remote write and Loki")
    b.add(
        timeseries(
            "Push requests",
            "Push attempts per second by target and result (ok, retry, rejected).",
            [
                prom(
                    rate("openqoe_processor_push_requests_total", p, "target, result"),
                    "{{target}} {{result}}",
                )
            ],
            "reqps",
        ),
        8,
    )
    b.add(
        timeseries(
            "Push failures",
            "Failed push attempts per second: retry (5xx, 429, transport) and rejected (other "
            "4xx, dropped).",
            [
                prom(
                    rate(
                        "openqoe_processor_push_requests_total",
                        f'{p}, result!="ok"',
                        "target, result",
                    ),
                    "{{target}} {{result}}",
                )
            ],
            "reqps",
        ),
        8,
    )
    b.add(
        timeseries(
            "Dropped items",
            "Samples or log lines dropped per second: rejected by the target, or overflow of "
            "the bounded queue.",
            [
                prom(
                    rate("openqoe_processor_push_dropped_items_total", p, "target, reason"),
                    "{{target}} {{reason}}",
                )
            ],
            "cps",
        ),
        8,
    )
    b.add(
        timeseries(
            "Pending push requests",
            "Requests queued per target; grows while a target is down.",
            [
                prom(
                    f"sum by (target) (openqoe_processor_push_pending_requests{{{p}}})",
                    "{{target}}",
                )
            ],
            "short",
        ),
        8,
    )
    b.add(
        timeseries(
            "Push duration p99",
            "Duration of one push attempt, by target.",
            [
                prom(
                    quantile(0.99, "openqoe_processor_push_duration_seconds", p, by="target"),
                    "{{target}}",
                )
            ],
            "s",
        ),
        8,
    )
    b.add(
        timeseries(
            "Log lines dropped",
            "Loki lines dropped per second because the processor's line buffer was full.",
            [prom(rate("openqoe_processor_log_lines_dropped_total", p), "dropped")],
            "cps",
        ),
        8,
    )
    return dashboard(
        uid="openqoe-pipeline",
        title="OpenQoE - Pipeline Health",
        description="Collector, Kafka, processor and output health.",
        board=b,
        variables=[
            datasource_variable("DS_PROMETHEUS", "prometheus", "Prometheus / Mimir"),
            query_variable(
                "collector", "Collector", "openqoe_ingest_kafka_ready", label_name="instance"
            ),
            query_variable(
                "processor",
                "Processor",
                "openqoe_processor_exported_series",
                label_name="instance",
            ),
        ],
        time_from="now-1h",
        refresh="30s",
    )


DASHBOARDS = {
    "vod-monitoring.json": vod_monitoring,
    "live-streaming.json": live_streaming,
    "quality-delivery.json": quality_delivery,
    "impact-explorer.json": impact_explorer,
    "pipeline-health.json": pipeline_health,
}


def render(model: Json) -> str:
    return json.dumps(model, indent=2, ensure_ascii=False) + "\n"


def build() -> dict[str, str]:
    """File name -> file text of every dashboard."""
    return {name: render(make()) for name, make in DASHBOARDS.items()}


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate the OpenQoE Grafana dashboards.")
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is out of date")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output directory")
    args = parser.parse_args(None if argv is None else list(argv))
    stale = []
    for name, text in build().items():
        path = args.out / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if stale:
        sys.stderr.write(
            f"out of date: {', '.join(stale)} (run python -m deploy.grafana.build_dashboards)\n"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
