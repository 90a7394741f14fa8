"""Recording rules and alerts: promtool checks and unit tests, full test coverage, names
that exist, runbooks, and the Mimir ruler loader (one group per request)."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.mimir.load_rules import load, rule_groups
from processors.catalog import COUNTERS, GAUGES, HISTOGRAMS

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules"
TESTS = ROOT / "deploy" / "prometheus" / "tests"
RULE_FILES = sorted(RULES.glob("*.yml"))


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is not installed (apt-get install prometheus; .ci/run does it)")
    return subprocess.run([binary, *args], capture_output=True, text=True, cwd=TESTS, check=False)


def all_rules() -> list[dict[str, Any]]:
    return [rule for group in rule_groups(RULE_FILES) for rule in group["rules"]]


def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    result = promtool("test", "rules", *sorted(p.name for p in TESTS.glob("*_test.yml")))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_recording_rule_has_a_unit_test() -> None:
    tested = set()
    for test in yaml.safe_load((TESTS / "recording_test.yml").read_text())["tests"]:
        tested |= {case["expr"] for case in test.get("promql_expr_test", [])}
    recorded = {rule["record"] for rule in all_rules() if "record" in rule}
    assert len(recorded) >= 25
    assert recorded <= tested, recorded - tested


def test_every_alert_is_tested_firing_and_silent() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for test in yaml.safe_load((TESTS / "alerts_test.yml").read_text())["tests"]:
        for case in test["alert_rule_test"]:
            (firing if case["exp_alerts"] else silent).add(case["alertname"])
    alerts = {rule["alert"] for rule in all_rules() if "alert" in rule}
    assert len(alerts) >= 18
    assert alerts <= firing, alerts - firing
    assert alerts <= silent, alerts - silent


def test_alerts_have_severity_annotations_and_a_runbook_section() -> None:
    runbooks = (ROOT / "docs" / "runbooks.md").read_text()
    anchors = {m.lower() for m in re.findall(r"^### (\w+)", runbooks, re.MULTILINE)}
    for rule in all_rules():
        if "alert" not in rule:
            continue
        assert rule["labels"]["severity"] in ("critical", "warning")
        assert {"summary", "description", "runbook_url"} <= set(rule["annotations"])
        assert rule["annotations"]["runbook_url"] == f"docs/runbooks.md#{rule['alert'].lower()}"
        assert rule["alert"].lower() in anchors, f"no runbook section for {rule['alert']}"


KNOWN_PREFIXES = ("openqoe_ingest_", "openqoe_processor_")


def test_rules_only_use_metrics_that_exist() -> None:
    exported = {m.name for m in COUNTERS.values()} | {m.name for m in GAUGES.values()}
    for metric in HISTOGRAMS.values():
        exported |= {f"{metric.name}_bucket", f"{metric.name}_sum", f"{metric.name}_count"}
    recorded = {rule["record"] for rule in all_rules() if "record" in rule}
    for rule in all_rules():
        for name in re.findall(r"\b(openqoe[_:][a-z_:0-9]*)", rule["expr"]):
            if name.startswith(KNOWN_PREFIXES):
                continue  # the collector's and processor's own metrics, checked below
            assert name in exported or name in recorded, (
                f"{name} in {rule.get('record') or rule.get('alert')}"
            )


def test_self_metrics_used_in_rules_exist() -> None:
    from prometheus_client import CollectorRegistry

    from ingest.metrics import IngestMetrics
    from processors.metrics import ProcessorMetrics
    from processors.pusher import PushMetrics

    registry = CollectorRegistry()
    IngestMetrics.create(registry)
    ProcessorMetrics(registry)
    PushMetrics(registry)
    names = set()
    for family in registry.collect():
        names |= {
            f"{family.name}{suffix}" for suffix in ("", "_total", "_bucket", "_sum", "_count")
        }
    for rule in all_rules():
        for name in re.findall(r"\b(openqoe_(?:ingest|processor)_[a-z_0-9]*)", rule["expr"]):
            assert name in names, name


class FakeRuler:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], Any]] = []
        ruler = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                document = yaml.safe_load(body)
                ok = isinstance(document, dict) and "name" in document and "groups" not in document
                ruler.requests.append((self.path, dict(self.headers), document))
                self.send_response(202 if ok else 400)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def ruler() -> Iterator[FakeRuler]:
    fake = FakeRuler()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def test_loader_posts_one_group_per_request_with_the_tenant(ruler: FakeRuler) -> None:
    groups = rule_groups(RULE_FILES)
    load(ruler.url, "acme", "openqoe", groups)
    assert len(ruler.requests) == len(groups)
    for (path, headers, document), group in zip(ruler.requests, groups, strict=True):
        assert path == "/prometheus/config/v1/rules/openqoe"
        assert headers["X-Scope-OrgID"] == "acme"
        assert headers["Content-Type"] == "application/yaml"
        assert document == group
