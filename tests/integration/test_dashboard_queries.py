"""Every PromQL query of every dashboard returns data after a real pipeline run.

A dedicated Prometheus evaluates the recording rules (deploy/prometheus/rules) every
second, receives the processor's remote write and scrapes two real collector processes
(``python -m ingest``; the second is misconfigured on purpose, so that 5xx answers exist)
and the processor worker (job names ``openqoe-collector`` and ``openqoe-processor``).
Scripted views (tests/scenarios.py) and generated views (bench/traffic.py), varied over
two orgs, two envs, apps, devices, players, CDNs, countries and stream types, plus live
views kept playing, rejected events, client errors and Loki push failures are sent in
rounds; each round waits until its views reached Prometheus. Then every panel query and
variable query, with Grafana's variables substituted as for "All", must return at least
one finite value (Grafana shows NaN and empty results alike as "No data").
``DASHBOARD_QUERY_DUMP=<file>`` writes what every query returned, for a look by hand.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests
import yaml

from bench.traffic import DEVICES, new_view, view_script
from deploy.grafana.validate import (
    RECORDING_RULES,
    Json,
    iter_targets,
    load_dashboards,
    substitute,
)
from ingest.topics import TopicsConfig
from tests.events import event
from tests.fakes.loki import FakeLoki
from tests.integration.pipeline import (
    Collector,
    ProcessorWorker,
    PrometheusServer,
    processor_env,
    wait_for,
)
from tests.scenarios import view_events

pytestmark = pytest.mark.kafka

KEYS = {"acme": "key-acme-0123456789", "globex": "key-globex-0123456789"}
ROUNDS = 8
LIVE_PER_ORG = 4
COUNTRIES = ("US", "DE", "FR", "BR", "JP")
# Grafana's built-in variables, as for a one-hour range with a 1 m interval.
BUILTINS = {"__rate_interval": "1m", "__interval": "1m", "__range": "1h"}


def prometheus_config(collectors: list[Collector], worker: ProcessorWorker | None) -> str:
    config: dict[str, Any] = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        # The alerts too: every rule is evaluated against the real data (see the end).
        "rule_files": [str(RECORDING_RULES), str(RECORDING_RULES.with_name("openqoe-alerts.yml"))],
    }
    if worker is not None:
        config["scrape_configs"] = [
            {
                "job_name": "openqoe-collector",
                "static_configs": [
                    {"targets": [c.url.removeprefix("http://") for c in collectors]}
                ],
            },
            {
                "job_name": "openqoe-processor",
                "static_configs": [{"targets": [worker.url.removeprefix("http://")]}],
            },
        ]
    return json.dumps(config)  # JSON is YAML


# --- traffic ------------------------------------------------------------------------------


# Generated views cycle through these profiles: (stream_type, env, app, country, cdn,
# device index in bench.traffic.DEVICES, player, ending). Every profile comes back every
# round with the same labels, so each label set's counters grow across samples: a series
# seen once is one sample, and rate() needs two.
PROFILES: list[tuple[str | None, str, str, str, str, int, str, str]] = [
    ("live", "prod", "web", "US", "akamai", 0, "hlsjs", "as scripted"),
    ("vod", "prod", "tvapp", "DE", "fastly", 2, "shaka", "recovered error"),
    (None, "staging", "web", "FR", "cloudfront", 4, "videojs", "recovered error"),
    ("live", "prod", "tvapp", "BR", "fastly", 3, "dashjs", "fatal error"),
    ("vod", "staging", "web", "JP", "akamai", 1, "html5", "fatal error"),
    ("live", "prod", "web", "DE", "cloudfront", 4, "shaka", "as scripted"),
]


def decorate(events: list[dict[str, Any]], i: int, now_ms: int) -> list[dict[str, Any]]:
    """Give a generated view profile ``i``'s context and ending; end it at ``now_ms``."""
    stream_type, env, app, country, cdn, device, player, ending = PROFILES[i % len(PROFILES)]
    shift = now_ms - 1000 - max(e["event_time"] for e in events)
    for e in events:
        e["event_time"] += shift
        e["viewer_time"] += shift
        e["env"], e["app_name"] = env, app
        e["network"] = {"country_code": country}
        e["cdn"] = {"provider": cdn}
        e["device"], e["os"], e["browser"] = (dict(part) for part in DEVICES[device])
        e["player"]["name"] = player
        if stream_type is not None:
            e["video"]["stream_type"] = stream_type
        if e["event_type"] == "playerready":
            e["data"]["page_load_time"] = 300.0 + 97 * (i % 9)
    playing = next((k for k, e in enumerate(events) if e["event_type"] == "playing"), None)
    if playing is None:
        return events  # failed or left before the first frame (bench.traffic's odds)
    if ending == "recovered error":
        recovered = json.loads(json.dumps(events[playing]))
        recovered.update(event_id=str(uuid.uuid4()), event_type="error")
        recovered["data"] = {"error_family": "media", "error_code": "4", "fatal": False}
        events.insert(playing + 1, recovered)
    elif ending == "fatal error":
        fatal = json.loads(json.dumps(events[-1]))
        fatal.update(event_id=str(uuid.uuid4()), event_type="error")
        fatal["data"] = {"error_family": ("drm", "decoder")[i % 2], "error_code": "7"}
        events[-1] = fatal
    return events


class Traffic:
    """Sends the rounds and remembers how many views were started."""

    def __init__(self, session: aiohttp.ClientSession, collector: Collector) -> None:
        self.session = session
        self.url = collector.url
        self.rng = random.Random(7)
        self.started = 0
        self.generated = 0
        self.live: dict[str, list[dict[str, Any]]] = {org: [] for org in KEYS}

    async def post(self, org: str, body: Any, *, key: str | None = None, url: str = "") -> int:
        headers = {"X-API-Key": key or KEYS[org], "Content-Type": "application/json"}
        data = body if isinstance(body, str) else json.dumps({"events": body})
        async with self.session.post(
            f"{url or self.url}/v1/events", data=data, headers=headers
        ) as response:
            await response.read()
            return response.status

    async def accepted(self, org: str, events: list[dict[str, Any]]) -> None:
        status = await self.post(org, events)
        assert status == 202, f"{status} for {events[0]['event_type']} of {org}"

    async def start_live_views(self, org: str, now_ms: int) -> None:
        for n in range(LIVE_PER_ORG):
            view = new_view(self.rng, org)
            view["video_id"] = f"live_{n}"
            events = view_script(self.rng, view, now_ms - 5000, 10_000)[:3]
            for e in events:
                e["video"]["stream_type"] = "live"
                e["network"] = {"country_code": COUNTRIES[n]}
                e["event_time"] = e["viewer_time"] = min(e["event_time"], now_ms)
            if events[-1]["event_type"] != "playing":
                continue  # this one failed or left before starting: fine, it ended
            await self.accepted(org, events)
            self.live[org].append(events[-1])
            self.started += 1

    async def heartbeat_live_views(self, org: str, now_ms: int, end: bool) -> None:
        batch = []
        for last in self.live[org]:
            beat = json.loads(json.dumps(last))
            beat.update(event_id=str(uuid.uuid4()), event_type="heartbeat")
            beat["event_time"] = beat["viewer_time"] = now_ms
            beat["data"] = {"bitrate": last["data"].get("bitrate", 800_000), "dropped_frames": 2}
            batch.append(beat)
            if end:
                done = dict(beat, event_id=str(uuid.uuid4()), event_type="ended", data={})
                batch.append(done)
        if batch:
            await self.accepted(org, batch)

    async def round(self, k: int, broken: Collector) -> None:
        now_ms = int(time.time() * 1000)
        for org in KEYS:
            if k == 0:
                await self.start_live_views(org, now_ms)
            for events in view_events(org, f"{org}-r{k}", now_ms - 300_000).values():
                await self.accepted(org, events)
                self.started += 1
            for _ in PROFILES:
                view = new_view(self.rng, org)
                events = view_script(self.rng, view, now_ms, 10_000)
                await self.accepted(org, decorate(events, self.generated, now_ms))
                self.generated += 1
                self.started += 1
            await self.heartbeat_live_views(org, now_ms, end=k == ROUNDS - 1)
            # Rejected events (207), client errors (400, 401) and a Kafka failure (503).
            bad = [
                event("bogus", now_ms, org_id=org),
                event("heartbeat", now_ms, org_id=org, view_id=""),
                event("heartbeat", now_ms, org_id=org, view_id=f"{org}-r{k}-normal"),
            ]
            assert await self.post(org, bad) == 207
            assert await self.post(org, "{not json") == 400
            assert await self.post(org, [], key="wrong-key-0123456789") == 401
            assert await self.post(org, bad[2:], url=broken.url) == 503


def alive(worker: ProcessorWorker) -> bool:
    if worker.process.poll() is not None:
        pytest.fail(f"processor exited with {worker.process.returncode}:\n{worker.tail()}")
    return True


# --- checks -------------------------------------------------------------------------------


def finite(result: Json) -> bool:
    """True when a query result holds at least one finite number."""
    data = result["result"]
    if result["resultType"] == "scalar":
        return math.isfinite(float(data[1]))
    samples = [v for series in data for v in series.get("values", [series.get("value")])]
    return any(math.isfinite(float(value)) for _, value in samples)


class Query:
    def __init__(self, where: str, expr: str, instant: bool) -> None:
        self.where = where
        self.expr = expr
        self.instant = instant
        self.last = "not run"

    def run(self, prometheus: PrometheusServer, start: float) -> bool:
        now = time.time()
        if self.instant:
            params: dict[str, str | float] = {"query": self.expr, "time": now}
            path = "/api/v1/query"
        else:
            params = {"query": self.expr, "start": start, "end": now, "step": 1}
            path = "/api/v1/query_range"
        response = requests.get(f"{prometheus.url}{path}", params=params, timeout=30)
        if response.status_code == 400:  # a syntax error never heals
            pytest.fail(f"{self.where}: {response.json()['error']}\n{self.expr}")
        response.raise_for_status()
        data = response.json()["data"]
        self.last = json.dumps(data["result"])[:300]
        return finite(data)


class LabelValues:
    def __init__(self, where: str, selector: str, label: str) -> None:
        self.where = where
        self.selector = selector
        self.label = label
        self.expr = f"label_values({selector}, {label})"
        self.values: list[str] = []
        self.last = "not run"

    def run(self, prometheus: PrometheusServer, start: float) -> bool:
        params: dict[str, str | float] = {
            "match[]": self.selector,
            "start": start,
            "end": time.time(),
        }
        response = requests.get(
            f"{prometheus.url}/api/v1/label/{self.label}/values", params=params, timeout=30
        )
        response.raise_for_status()
        self.values = response.json()["data"]
        self.last = repr(self.values)
        return bool(self.values)


def dashboard_queries() -> list[Query | LabelValues]:
    queries: list[Query | LabelValues] = []
    for name, dashboard in load_dashboards().items():
        for panel, target in iter_targets(dashboard):
            if target["datasource"]["type"] != "prometheus":
                continue
            where = f"{name} / {panel['title']} / {target['refId']}"
            expr = substitute(target["expr"], dashboard, BUILTINS)
            queries.append(Query(where, expr, target["instant"]))
        for variable in dashboard["templating"]["list"]:
            if variable["type"] != "query":
                continue
            match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"]["query"])
            assert match, variable["query"]
            selector = substitute(match.group(1), dashboard, BUILTINS)
            queries.append(LabelValues(f"{name} / ${variable['name']}", selector, match.group(2)))
    return queries


def wait_for_data(
    prometheus: PrometheusServer, queries: list[Query | LabelValues], start: float, timeout_s: float
) -> None:
    """Poll until every query has data; fail listing those that never got any."""
    pending = list(queries)
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        pending = [query for query in pending if not query.run(prometheus, start)]
        if pending:
            time.sleep(1)
    if os.environ.get("DASHBOARD_QUERY_DUMP"):
        Path(os.environ["DASHBOARD_QUERY_DUMP"]).write_text(
            "\n".join(f"{q.where}\n  {q.last}" for q in queries)
        )
    assert not pending, "queries without data:\n" + "\n".join(
        f"- {q.where}: {q.expr}\n  last: {q.last}" for q in pending
    )


def assert_every_rule_evaluates(prometheus: PrometheusServer) -> None:
    """Every recording and alerting rule ran on this data without an evaluation error."""
    groups = requests.get(f"{prometheus.url}/api/v1/rules", timeout=10).json()["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    files = [RECORDING_RULES, RECORDING_RULES.with_name("openqoe-alerts.yml")]
    defined = [
        r for f in files for g in yaml.safe_load(f.read_text())["groups"] for r in g["rules"]
    ]
    assert len(rules) == len(defined)
    for rule in rules:
        assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))
        assert not rule["lastEvaluation"].startswith("0001"), rule["name"]


@pytest.mark.timeout(420)
async def test_every_dashboard_query_returns_data(
    topics: TopicsConfig, fake_loki: FakeLoki, tmp_path: Path
) -> None:
    queries = dashboard_queries()
    assert len(queries) > 100  # every panel of five dashboards, and their variables
    prometheus = PrometheusServer(tmp_path / "prometheus", prometheus_config([], None))
    worker = ProcessorWorker(
        processor_env(
            topics,
            app_id=f"test-dash-{uuid.uuid4().hex[:8]}",
            data_dir=tmp_path / "worker",
            remote_write_url=prometheus.write_url,
            loki_url=fake_loki.url,
            PROCESSOR_VIEW_TIMEOUT_S="8",  # live views get a heartbeat every round
        ),
        tmp_path / "worker.log",
    )
    collector = Collector(topics, tmp_path / "collector.log", KEYS)
    # Points at a topic that does not exist: Kafka never acknowledges, so it answers 503.
    broken = Collector(
        topics,
        tmp_path / "broken.log",
        KEYS,
        INGEST_RAW_TOPIC=f"test.missing.{uuid.uuid4().hex[:8]}",
        INGEST_PRODUCE_TIMEOUT_S="0.5",
    )
    try:
        prometheus.reload(prometheus_config([collector, broken], worker))
        wait_for("processor healthy", worker.healthy, 90)
        wait_for("collector ready", collector.ready, 60)
        wait_for("misconfigured collector up", broken.answers, 60)
        start = time.time() - 5

        async with aiohttp.ClientSession() as session:
            traffic = Traffic(session, collector)
            for k in range(ROUNDS):
                if k in (2, 5):  # Loki rejects a push: lines dropped and counted
                    fake_loki.fail_status, fake_loki.fail_next = 400, 1
                if k == 3:  # Loki unavailable: pushes retried
                    fake_loki.fail_status, fake_loki.fail_next = 503, 2
                await traffic.round(k, broken)
                # Pace the rounds by the pipeline: wait until this round's views are in
                # Prometheus, so that counters grow across several samples.
                wait_for(
                    f"{traffic.started} views started (round {k})",
                    lambda: (
                        alive(worker)
                        and prometheus.value("sum(openqoe_views_started_total)") == traffic.started
                    ),
                    timeout_s=60,
                    every_s=0.2,
                )

        wait_for_data(prometheus, queries, start, timeout_s=120)

        values = {q.where: set(q.values) for q in queries if isinstance(q, LabelValues)}
        assert values["vod-monitoring.json / $org"] == set(KEYS)
        assert {"desktop", "mobile", "tv"} <= values["vod-monitoring.json / $device"]
        assert len(values["pipeline-health.json / $collector"]) == 2
        assert fake_loki.lines("view")
        assert fake_loki.lines("error")
        assert_every_rule_evaluates(prometheus)
    finally:
        for process in (collector, broken):
            process.stop()
        assert worker.stop() == 0, worker.tail()
        prometheus.stop()
