"""Static checks of the Grafana dashboards (deploy/grafana): generated, valid, linted.

The queries themselves run against real data in tests/integration/test_dashboard_queries.py.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from deploy.grafana import build_dashboards
from deploy.grafana.check_types import TypeCheckerMissing, generate, type_errors
from deploy.grafana.validate import (
    DASHBOARD_DIR,
    LogQLCheckerMissing,
    check_logql,
    iter_panels,
    iter_targets,
    lint,
    load_dashboards,
    logql_problems,
    recording_rules,
    substitute,
    variables,
)

DASHBOARDS = load_dashboards()
NAMES = sorted(build_dashboards.DASHBOARDS)
QOE = [name for name in NAMES if name != "pipeline-health.json"]


def test_the_five_dashboards_are_committed_exactly_as_generated() -> None:
    assert sorted(p.name for p in DASHBOARD_DIR.glob("*.json")) == NAMES
    built = build_dashboards.build()
    for name in NAMES:
        assert (DASHBOARD_DIR / name).read_text() == built[name], (
            f"{name} is out of date: run python -m deploy.grafana.build_dashboards"
        )


def test_check_mode_reports_stale_files(tmp_path: Path) -> None:
    assert build_dashboards.main(["--out", str(tmp_path)]) == 0
    assert build_dashboards.main(["--out", str(tmp_path), "--check"]) == 0
    (tmp_path / "live-streaming.json").write_text("{}")
    assert build_dashboards.main(["--out", str(tmp_path), "--check"]) == 1


def checked_types(dashboards: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    try:
        return type_errors(dashboards)
    except TypeCheckerMissing as exc:
        pytest.fail(str(exc))


def test_every_dashboard_matches_grafanas_own_dashboard_type() -> None:
    assert checked_types(DASHBOARDS) == {name: [] for name in NAMES}


def test_the_generated_typescript_is_the_dashboard_inline_under_grafanas_types() -> None:
    dashboard = DASHBOARDS["vod-monitoring.json"]
    text = generate(dashboard).text
    assert 'import type { Dashboard } from "@grafana/schema";' in text
    assert "export const dashboard: GrafanaJson<Dashboard> = {" in text
    assert "satisfies GrafanaJson<Partial<Stat.Options>>" in text
    assert "satisfies GrafanaJson<Partial<TimeSeries.FieldConfig>>" in text
    assert f'"uid": {json.dumps(dashboard["uid"])},' in text
    assert not re.search(r'from "[^"]*\.json"', text), "a .json import skips excess-key checks"


@pytest.mark.parametrize("name", NAMES)
def test_dashboard_passes_the_lint_rules(name: str) -> None:
    assert lint(DASHBOARDS[name]) == []


@pytest.mark.parametrize("name", NAMES)
def test_logql_parses_and_selects_only_existing_stream_labels(name: str) -> None:
    try:
        problems = logql_problems(DASHBOARDS[name])
    except LogQLCheckerMissing as exc:
        pytest.fail(str(exc))
    assert problems == []


@pytest.mark.parametrize("name", NAMES)
def test_panels_have_unique_titles_and_every_target_a_datasource(name: str) -> None:
    dashboard = DASHBOARDS[name]
    titles = [p["title"] for p in iter_panels(dashboard) if p["type"] != "row"]
    assert len(titles) == len(set(titles))
    for panel, target in iter_targets(dashboard):
        assert target["refId"], panel["title"]
        assert target["datasource"]["type"] == panel["datasource"]["type"], panel["title"]


@pytest.mark.parametrize("name", QOE)
def test_qoe_dashboards_filter_by_org_env_app_device_player(name: str) -> None:
    dashboard = DASHBOARDS[name]
    found = variables(dashboard)
    assert found["DS_PROMETHEUS"]["query"] == "prometheus"
    assert found["DS_LOKI"]["query"] == "loki"
    for label in ("org", "env", "app", "device", "player"):
        variable = found[label]
        assert variable["multi"], label
        assert variable["includeAll"], label
        assert variable["allValue"] == ".*", label
        assert variable["query"]["query"].startswith("label_values(openqoe_"), label
        assert variable["query"]["query"].endswith(f", {label})"), label
    logs = [t["expr"] for p, t in iter_targets(dashboard) if p["type"] == "logs"]
    assert logs, "every QoE dashboard shows Loki lines"
    assert all(re.match(r'\{kind="(view|error)", org=~"\$org", env=~"\$env"\}', e) for e in logs)


def test_the_loki_panels_show_fatal_errors_and_view_summaries() -> None:
    exprs = {
        t["expr"] for d in DASHBOARDS.values() for p, t in iter_targets(d) if p["type"] == "logs"
    }
    assert any(e.startswith('{kind="error", org=~"$org", env=~"$env"} | json') for e in exprs)
    assert any(e.startswith('{kind="view", org=~"$org", env=~"$env"} | json') for e in exprs)


@pytest.mark.parametrize("name", NAMES)
def test_units_match_what_the_queries_return(name: str) -> None:
    """Durations in seconds, ratios 0-1, bitrates in bits per second."""
    for panel in iter_panels(DASHBOARDS[name]):
        if panel["type"] in ("row", "logs", "heatmap"):
            continue
        unit = panel["fieldConfig"]["defaults"]["unit"]
        exprs = [t["expr"] for t in panel["targets"]]
        if all(re.match(r"histogram_quantile\(.*_seconds_bucket", e, re.S) for e in exprs):
            assert unit == "s", panel["title"]
        if all(re.match(r"histogram_quantile\(.*_bps_bucket", e, re.S) for e in exprs):
            assert unit == "bps", panel["title"]
        if all(re.search(r"_ratio:|failure_ratio|rebuffer_ratio", e) for e in exprs):
            assert unit == "percentunit", panel["title"]
        if re.search(r"\bratio\b", panel["title"].lower()) and "/" not in panel["title"]:
            assert unit == "percentunit", panel["title"]


def test_recording_rules_used_exist_and_are_used() -> None:
    rules = recording_rules()
    used = {
        name
        for d in DASHBOARDS.values()
        for _, t in iter_targets(d)
        for name in re.findall(r"openqoe:[\w:]+", t["expr"])
    }
    assert used <= rules
    assert len(used) >= 20  # overview panels, pipeline health


def test_substitute_replaces_variables_like_grafana_with_all_selected() -> None:
    dashboard = DASHBOARDS["impact-explorer.json"]
    expr = 'sum(rate(x{org=~"$org", app=~"${app}"}[$__rate_interval])) * $revenue_per_watch_hour'
    assert substitute(expr, dashboard) == 'sum(rate(x{org=~".*", app=~".*"}[1m])) * 0.005'
    assert substitute("[$__range]", dashboard, {"__range": "6h"}) == "[6h]"


# --- the checks catch what they should -----------------------------------------------------


def broken(mutate: Any) -> dict[str, Any]:
    dashboard = copy.deepcopy(DASHBOARDS["vod-monitoring.json"])
    mutate(dashboard)
    return dashboard


def first_data_panel(dashboard: dict[str, Any]) -> dict[str, Any]:
    return next(p for p in dashboard["panels"] if p["type"] != "row")


TYPE_MUTATIONS: list[tuple[str, Any, str]] = [
    ("misspelt dashboard key", lambda d: d.update(titel="x"), "$.titel: "),
    ("misspelt panel key", lambda d: first_data_panel(d).update(colour="red"), ".colour: "),
    ("misspelt gridPos key", lambda d: first_data_panel(d)["gridPos"].update(width=6), ".width"),
    ("misspelt option", lambda d: first_data_panel(d)["options"].update(textMod="auto"), "textMod"),
    ("wrong type: title", lambda d: d.update(title=5), "$.title: "),
    ("wrong type: gridPos.x", lambda d: first_data_panel(d)["gridPos"].update(x="0"), ".x: "),
    ("wrong type: refresh", lambda d: d.update(refresh=30), "$.refresh: "),
    (
        "wrong enum value",
        lambda d: first_data_panel(d)["fieldConfig"]["defaults"]["thresholds"].update(mode="abs"),
        ".thresholds.mode: ",
    ),
    (
        "wrong option type",
        lambda d: first_data_panel(d)["options"].update(colorMode=True),
        ".options.colorMode: ",
    ),
    ("missing schemaVersion", lambda d: d.pop("schemaVersion"), "$: "),
]


def test_grafanas_types_reject_misspelt_keys_and_wrong_types() -> None:
    """One tsc run over every mutation; each must fail where it was made, the original not."""
    dashboards = {f"m{i}.json": broken(m) for i, (_, m, _) in enumerate(TYPE_MUTATIONS)}
    dashboards["original.json"] = DASHBOARDS["vod-monitoring.json"]
    errors = checked_types(dashboards)
    assert errors.pop("original.json") == []
    for i, (what, _, where) in enumerate(TYPE_MUTATIONS):
        found = errors[f"m{i}.json"]
        assert found, f"{what}: not caught"
        assert any(where in e for e in found), f"{what}: {found}"
        assert all("error TS" in e for e in found), found


def set_expr(dashboard: dict[str, Any], expr: str) -> None:
    first_data_panel(dashboard)["targets"][0]["expr"] = expr


@pytest.mark.parametrize(
    ("mutation", "message"),
    [
        (lambda d: first_data_panel(d).update(id=1), "duplicate panel ids"),
        (lambda d: first_data_panel(d)["gridPos"].update(x=22), "wider than"),
        (lambda d: first_data_panel(d)["gridPos"].update(y=0), "overlap"),
        (lambda d: set_expr(d, 'sum(x{org=~"$tenant"})'), "undefined variable $tenant"),
        (lambda d: set_expr(d, "sum(increase(x[5m]))"), "window [5m]"),
        (lambda d: set_expr(d, "sum(increase(x[$__rate_interval]))"), "in a instant query"),
        (lambda d: set_expr(d, "rate(openqoe:rebuffer_ratio:5m[$__range])"), "of recording rule"),
        (lambda d: set_expr(d, "openqoe:no_such_rule:5m"), "unknown recording rule"),
        (
            lambda d: first_data_panel(d).update(datasource={"type": "prometheus", "uid": "abc"}),
            "must be a DS_PROMETHEUS/DS_LOKI ref",
        ),
        (lambda d: d["links"][0].update(uid="abc"), "hard-coded uid"),
        (lambda d: first_data_panel(d).update(type="graph"), "unsupported panel type 'graph'"),
        (lambda d: first_data_panel(d)["fieldConfig"]["defaults"].update(unit="ms"), "unit 'ms'"),
        (lambda d: first_data_panel(d)["targets"][0].pop("datasource"), "without a datasource"),
        (lambda d: first_data_panel(d)["targets"][0].update(expr=""), "without an expression"),
        (lambda d: first_data_panel(d)["targets"][0].pop("refId"), "missing or repeated refId"),
        (lambda d: first_data_panel(d).update(targets=[]), "no queries"),
        (
            lambda d: d["templating"]["list"].append({"type": "custom", "name": "x"}),
            "type 'custom' is not one of",
        ),
    ],
)
def test_lint_catches_broken_dashboards(mutation: Any, message: str) -> None:
    problems = lint(broken(mutation))
    assert any(message in p for p in problems), problems


def test_logql_checker_reports_syntax_errors_and_stream_labels() -> None:
    try:
        good, bad, unwrap = check_logql(
            [
                '{kind="view", org=~".*", video_id="v1"} | json',
                '{kind="view" | json',
                '{kind="view"} | json | unwrap watch_time_ms',  # unwrap needs a range
            ]
        )
    except LogQLCheckerMissing as exc:
        pytest.fail(str(exc))
    assert good["errors"] == []
    assert [m["label"] for m in good["selectors"][0]] == ["kind", "org", "video_id"]
    assert bad["errors"]
    assert unwrap["errors"]


def test_logql_lint_refuses_labels_that_are_not_stream_labels() -> None:
    def mutate(d: dict[str, Any]) -> None:
        logs = next(p for p in d["panels"] if p["type"] == "logs")
        logs["targets"][0]["expr"] = '{kind="error", view_id="x"} | json'

    try:
        problems = logql_problems(broken(mutate))
    except LogQLCheckerMissing as exc:
        pytest.fail(str(exc))
    assert any("['view_id'] do not exist" in p for p in problems), problems
