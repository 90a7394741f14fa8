"""Check the dashboards without Grafana: Grafana's types, lint rules and LogQL syntax.

    python -m deploy.grafana.validate     # every file in deploy/grafana/dashboards

- Grafana's own TypeScript types (npm ``@grafana/schema``) must accept them: see
  ``check_types.py`` (tsc --strict on each dashboard as an inline ``Dashboard`` literal);
- lint (what those types leave open and a working OpenQoE dashboard needs): only the panel
  plugins and variable types we support, base units, every query with a refId, a datasource
  and an expression, unique panel ids, panels inside the 24-column grid and not overlapping, unique
  refIds, every ``$variable`` defined, datasources only as ``${DS_PROMETHEUS}`` /
  ``${DS_LOKI}`` (no raw uids), range windows only ``$__rate_interval`` (graphs) or
  ``$__range`` (instant totals), ``rate``/``increase`` never on a recording rule, and every
  recording rule used exists in ``deploy/prometheus/rules/openqoe-recording.yml``;
- LogQL: parsed by ``check_logql.mjs`` (Grafana's lezer-logql grammar); stream selectors
  use only the labels the processor sets: org, env, kind.

The tests (``tests/unit/test_dashboards.py``, ``tests/integration/test_dashboard_queries.py``)
use these functions; the query test also runs every PromQL query on real data.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

Json = dict[str, Any]

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DASHBOARD_DIR = HERE / "dashboards"
RECORDING_RULES = REPO / "deploy" / "prometheus" / "rules" / "openqoe-recording.yml"
LOGQL_CHECKER = HERE / "check_logql.mjs"
NODE_PREFIX = HERE / "node"

LOKI_STREAM_LABELS = frozenset({"org", "env", "kind"})
BUILTIN_VARIABLES = frozenset(
    {"__rate_interval", "__interval", "__interval_ms", "__range", "__range_s", "__all"}
)
DATASOURCE_UIDS = {"prometheus": "${DS_PROMETHEUS}", "loki": "${DS_LOKI}"}
# Core panel plugins we use -> the name @grafana/schema exports their panelcfg types under.
# Anything else (e.g. the Angular "graph", removed in Grafana 12) is refused by lint.
PANEL_PLUGINS = {
    "bargauge": "BarGauge",
    "gauge": "Gauge",
    "heatmap": "Heatmap",
    "logs": "Logs",
    "piechart": "PieChart",
    "stat": "Stat",
    "table": "Table",
    "timeseries": "TimeSeries",
}
# Grafana unit ids for what our series measure, in base units: seconds, 0-1 ratios, bits
# per second, counts and rates, money.
UNITS = frozenset({"s", "percentunit", "bps", "short", "none", "cps", "reqps", "currencyUSD"})
# The variable types substitute() knows how to fill in.
VARIABLE_TYPES = frozenset({"datasource", "query", "textbox"})

_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)\]\]|\$(\w+)")
_WINDOW = re.compile(r"\[([^\]\[]*)\]")
_RATE_CALL = re.compile(r"\b(rate|irate|increase)\(\s*([A-Za-z_:][\w:]*)")
_METRIC_NAME = re.compile(r"\b([a-z_]+:[\w:]+)")


def load_dashboards(directory: Path = DASHBOARD_DIR) -> dict[str, Json]:
    return {path.name: json.loads(path.read_text()) for path in sorted(directory.glob("*.json"))}


def iter_panels(dashboard: Json) -> Iterator[Json]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def iter_targets(dashboard: Json) -> Iterator[tuple[Json, Json]]:
    """(panel, target) for every query of every panel."""
    for panel in iter_panels(dashboard):
        for target in panel.get("targets", []):
            yield panel, target


def variables(dashboard: Json) -> dict[str, Json]:
    return {v["name"]: v for v in dashboard["templating"]["list"]}


def recording_rules(path: Path = RECORDING_RULES) -> set[str]:
    document = yaml.safe_load(path.read_text())
    return {
        rule["record"]
        for group in document["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _datasource_refs(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key == "datasource":
                yield f"{path}.{key}", item
            else:
                yield from _datasource_refs(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _datasource_refs(item, f"{path}[{i}]")


def _uids(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key == "uid":
                yield f"{path}.{key}", item
            yield from _uids(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _uids(item, f"{path}[{i}]")


def lint(dashboard: Json, rules: set[str] | None = None) -> list[str]:
    """Rules Grafana does not enforce but a working dashboard needs."""
    rules = recording_rules() if rules is None else rules
    problems: list[str] = []
    panels = list(iter_panels(dashboard))

    for panel in panels:
        title = panel.get("title")
        if panel["type"] != "row" and panel["type"] not in PANEL_PLUGINS:
            problems.append(f"panel {title!r}: unsupported panel type {panel['type']!r}")
        if panel["type"] in ("row", "logs", "heatmap"):
            continue
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
        if unit not in UNITS:
            problems.append(f"panel {title!r}: unit {unit!r} is not one of {sorted(UNITS)}")
    for panel in panels:
        if panel["type"] != "row" and not panel.get("targets"):
            problems.append(f"panel {panel.get('title')!r}: no queries")
        for target in panel.get("targets", []):
            where = f"panel {panel.get('title')!r} {target.get('refId')}"
            if not isinstance(target.get("datasource"), Mapping):
                problems.append(f"{where}: query without a datasource")
            if not target.get("expr"):
                problems.append(f"{where}: query without an expression")
    for variable in dashboard["templating"]["list"]:
        if variable.get("type") not in VARIABLE_TYPES:
            problems.append(
                f"variable {variable.get('name')!r}: type {variable.get('type')!r} is not one "
                f"of {sorted(VARIABLE_TYPES)}"
            )
    if problems:
        return problems  # the rules below assume well-formed panels, queries and variables

    ids = [p["id"] for p in panels]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        problems.append(f"duplicate panel ids {duplicates}")

    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        pos = panel["gridPos"]
        if pos["x"] + pos["w"] > 24:
            problems.append(f"panel {panel['title']!r} is wider than the 24-column grid")
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                other = cells.setdefault((x, y), panel["title"])
                if other != panel["title"]:
                    problems.append(f"panels {other!r} and {panel['title']!r} overlap")
                    break
            else:
                continue
            break

    for panel in panels:
        ref_ids = [t.get("refId") for t in panel.get("targets", [])]
        if len(set(ref_ids)) != len(ref_ids) or None in ref_ids:
            problems.append(f"panel {panel['title']!r}: missing or repeated refId {ref_ids}")

    # Datasources: always a {type, uid} reference to our datasource variables.
    for path, ref in _datasource_refs(dashboard):
        expected = DATASOURCE_UIDS.get(ref.get("type", "")) if isinstance(ref, Mapping) else None
        if expected is None or ref.get("uid") != expected:
            problems.append(f"{path}: datasource must be a DS_PROMETHEUS/DS_LOKI ref: {ref!r}")
    for path, uid in _uids(dashboard):
        if path != ".uid" and uid not in DATASOURCE_UIDS.values():
            problems.append(f"{path}: hard-coded uid {uid!r}")

    # Variables: every reference is defined (or a Grafana builtin).
    defined = set(variables(dashboard)) | BUILTIN_VARIABLES
    for text in _strings({"panels": dashboard["panels"], "templating": dashboard["templating"]}):
        for match in _VARIABLE.finditer(text):
            name = next(group for group in match.groups() if group)
            if name not in defined:
                problems.append(f"undefined variable ${name} in {text[:80]!r}")

    # Windows and recording rules.
    for panel, target in iter_targets(dashboard):
        expr: str = target["expr"]
        where = f"panel {panel['title']!r} {target.get('refId')}"
        loki = target["datasource"]["type"] == "loki"
        instant = target.get("queryType") == "instant" if loki else target["instant"]
        allowed = {"$__range"} if instant else ({"$__interval"} if loki else {"$__rate_interval"})
        for window in _WINDOW.findall(expr):
            if window not in allowed:
                kind = "instant" if instant else "range"
                problems.append(
                    f"{where}: window [{window}] in a {kind} query; use {sorted(allowed)}"
                )
        if not loki:
            for fn, metric in _RATE_CALL.findall(expr):
                if ":" in metric:
                    problems.append(f"{where}: {fn}() of recording rule {metric}")
            for name in _METRIC_NAME.findall(_strip_strings(expr)):
                if name not in rules:
                    problems.append(f"{where}: unknown recording rule {name}")
    return problems


def _strip_strings(expr: str) -> str:
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)


def substitute(text: str, dashboard: Json, values: Mapping[str, str] | None = None) -> str:
    """Replace Grafana variables as Grafana would with "All" selected.

    Query variables become their allValue (".*"); textbox variables their default;
    ``values`` overrides (e.g. ``{"__rate_interval": "1m", "__range": "1h"}``).
    """
    table: dict[str, str] = {"__rate_interval": "1m", "__interval": "1m", "__range": "1h"}
    for name, variable in variables(dashboard).items():
        if variable["type"] == "query":
            table[name] = variable.get("allValue", ".*")
        elif variable["type"] == "textbox":
            table[name] = variable["query"]
        else:
            table[name] = DATASOURCE_UIDS[variable["query"]]
    table.update(values or {})

    def replace(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        return table.get(name, match.group(0))

    return _VARIABLE.sub(replace, text)


class LogQLCheckerMissing(RuntimeError):
    pass


def check_logql(queries: list[str]) -> list[Json]:
    """Parse ``queries`` with check_logql.mjs; one result per query (see the script)."""
    node = shutil.which("node")
    if node is None:
        raise LogQLCheckerMissing("node is not installed (Node.js 20+ is needed for LogQL checks)")
    if not (NODE_PREFIX / "node_modules" / "@grafana" / "lezer-logql").is_dir():
        raise LogQLCheckerMissing(
            "@grafana/lezer-logql is not installed: run `npm ci --prefix deploy/grafana/node`"
        )
    done = subprocess.run(  # noqa: S603 - our script, our input
        [node, str(LOGQL_CHECKER)],
        input=json.dumps(queries),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if done.returncode not in (0, 1):
        raise LogQLCheckerMissing(f"check_logql.mjs failed ({done.returncode}): {done.stderr}")
    results: list[Json] = json.loads(done.stdout)
    return results


def logql_problems(dashboard: Json) -> list[str]:
    targets = [(p, t) for p, t in iter_targets(dashboard) if t["datasource"]["type"] == "loki"]
    queries = [substitute(t["expr"], dashboard) for _, t in targets]
    problems = []
    for (panel, target), result in zip(targets, check_logql(queries), strict=True):
        where = f"panel {panel['title']!r} {target.get('refId')}"
        for error in result["errors"]:
            problems.append(
                f"{where}: LogQL syntax error at {error['from']} near {error['near']!r}"
            )
        if not result["selectors"]:
            problems.append(f"{where}: no stream selector")
        for selector in result["selectors"]:
            labels = {m["label"] for m in selector}
            if not labels <= LOKI_STREAM_LABELS:
                problems.append(
                    f"{where}: stream labels {sorted(labels - LOKI_STREAM_LABELS)} do not exist "
                    "(Loki streams have org, env, kind only; the rest is in the JSON line)"
                )
            if "kind" not in labels:
                problems.append(f"{where}: stream selector without kind")
    return problems


def main() -> int:
    from deploy.grafana.check_types import type_errors  # it imports this module

    rules = recording_rules()
    dashboards = load_dashboards()
    types = type_errors(dashboards)
    failed = False
    for name, dashboard in dashboards.items():
        problems = types[name] + lint(dashboard, rules) + logql_problems(dashboard)
        for problem in problems:
            sys.stderr.write(f"{name}: {problem}\n")
        failed = failed or bool(problems)
        if not problems:
            sys.stdout.write(f"{name}: ok\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
