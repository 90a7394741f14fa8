"""The pipeline against a real multi-tenant Cortex (the Apache-2.0 project Mimir was forked
from): tenant-per-org remote write through a basic-auth gateway, the rule loader
(deploy/mimir/load_rules.py) against the real ruler API, and our recording rules evaluated
by that ruler on pipeline data. Debian's Prometheus stays the store of the fast tests.

Cortex is built by ``deploy/cortex/build.sh`` (cached; ``.ci/run`` and ``scripts/test.sh``
build it first); see tests/integration/cortex.py for its configuration.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from deploy.mimir import load_rules
from ingest.topics import TopicsConfig
from tests.integration.conftest import CollectorFactory
from tests.integration.cortex import RULES_PATH, BasicAuthGateway, CortexServer
from tests.integration.pipeline import REPO, start_worker, wait_for
from tests.scenarios import EXPECTED_COUNTERS, VIEWS, view_events

pytestmark = pytest.mark.kafka

RULE_FILES = sorted((REPO / "deploy" / "prometheus" / "rules").glob("*.yml"))
RECORDING_RULES = REPO / "deploy" / "prometheus" / "rules" / "openqoe-recording.yml"


@pytest.fixture(scope="module")
def cortex(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CortexServer]:
    server = CortexServer(tmp_path_factory.mktemp("cortex"))
    yield server
    server.stop()


def tenant_name(what: str) -> str:
    return f"{what}{uuid.uuid4().hex[:8]}"


def test_cortex_is_multi_tenant_and_listens_on_loopback_only(cortex: CortexServer) -> None:
    answer = requests.post(cortex.push_url, data=b"", timeout=10)
    assert answer.status_code == 401, answer.text  # no X-Scope-OrgID: refused
    assert "no org id" in answer.text
    listening = Path("/proc/net/tcp").read_text().splitlines()[1:]
    # /proc/net/tcp: local address as hex ip:port, state 0A = LISTEN.
    ports = {int(p) for p in cortex.ports.values()}
    for line in listening:
        local, state = line.split()[1], line.split()[3]
        ip_hex, port_hex = local.split(":")
        if state == "0A" and int(port_hex, 16) in ports:
            assert ip_hex == "0100007F", f"port {int(port_hex, 16)} is not bound to 127.0.0.1"
    assert 9094 not in {
        int(line.split()[1].split(":")[1], 16)
        for line in listening
        if line.split()[3] == "0A" and line.split()[1].startswith("00000000")
    }, "something listens on *:9094 (the alertmanager's default cluster port)"


def test_rule_loader_posts_groups_to_the_real_ruler_and_reads_them_back_per_tenant(
    cortex: CortexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    both, recording_only, untouched = (tenant_name(w) for w in ("both", "rec", "none"))
    every_group = load_rules.rule_groups(RULE_FILES)
    recording = load_rules.rule_groups([RECORDING_RULES])
    for tenant, files in ((both, RULE_FILES), (recording_only, [RECORDING_RULES])):
        argv = ["--url", cortex.url, "--tenant", tenant, "--rules-path", RULES_PATH]
        with pytest.raises(SystemExit) as exited:
            load_rules.main([*argv, *map(str, files)])
        assert exited.value.code == 0
    assert capsys.readouterr().out.count("loaded ") == len(every_group) + len(recording)

    assert as_posted(cortex.rule_groups(both, "openqoe")) == as_posted(every_group)
    assert as_posted(cortex.rule_groups(recording_only, "openqoe")) == as_posted(recording)
    assert cortex.rule_groups(untouched, "openqoe") is None

    # Groups are replaced by name: loading again changes nothing.
    load_rules.load(cortex.url, both, "openqoe", every_group, rules_path=RULES_PATH)
    assert as_posted(cortex.rule_groups(both, "openqoe")) == as_posted(every_group)

    # The ruler runs what it stores: every alert of the tenant, none in the other.
    def alerts_in(tenant: str) -> set[str]:
        return {r["name"] for r in cortex.evaluated_rules(tenant) if r["type"] == "alerting"}

    expected_alerts = {r["alert"] for g in every_group for r in g["rules"] if "alert" in r}
    wait_for("the ruler to load the alerts", lambda: alerts_in(both) == expected_alerts, 30)
    assert alerts_in(recording_only) == set()


def as_posted(groups: list[dict[str, Any]] | None) -> dict[str, list[dict[str, Any]]]:
    """Rule groups by name with each rule's fields as in our files, less what the ruler
    normalises away: the trailing newline of YAML block scalars and a zero ``for``."""
    assert groups is not None
    out = {}
    for group in groups:
        rules = []
        for rule in group["rules"]:
            rule = {k: v for k, v in rule.items() if v not in (None, "", {}, [], "0s", "0m")}
            rule["expr"] = rule["expr"].strip()
            rules.append(rule)
        out[group["name"]] = rules
    return out


async def test_each_org_in_its_own_tenant_through_basic_auth_and_recorded_by_the_ruler(
    cortex: CortexServer, make_collector: CollectorFactory, topics: TopicsConfig, tmp_path: Path
) -> None:
    acme, globex, stranger = (tenant_name(w) for w in ("acme", "globex", "stranger"))
    recording = load_rules.rule_groups([RECORDING_RULES])
    for tenant in (acme, globex):
        load_rules.load(cortex.url, tenant, "openqoe", recording, rules_path=RULES_PATH)
    gateway = BasicAuthGateway(cortex.url, "openqoe-writer", "s3cret-token")
    worker = start_worker(
        topics,
        tmp_path,
        acme,
        f"{gateway.url}/api/v1/push",
        PROCESSOR_REMOTE_WRITE_TENANT_PER_ORG="true",
        PROCESSOR_REMOTE_WRITE_USERNAME="openqoe-writer",
        PROCESSOR_REMOTE_WRITE_PASSWORD="s3cret-token",  # noqa: S106 - the test gateway's
    )
    try:
        client = await make_collector(auth_disabled=True)
        start_ms = int(time.time() * 1000) - 300_000
        views = {org: view_events(org, org, start_ms) for org in (acme, globex)}
        # Two rounds, so the rules' rate() windows see the counters increase (a series
        # whose first sample already holds everything has a rate of 0, quantiles NaN).
        for round_names in (["normal"], [name for name in VIEWS if name != "normal"]):
            for org in (acme, globex):
                for name in round_names:
                    await post_until_accepted(client, views[org][f"{org}-{name}"])
            if round_names == ["normal"]:
                for org in (acme, globex):
                    first = f"sum(openqoe_views_ended_total{{org='{org}'}})"
                    wait_for(
                        f"the first view of {org} in its tenant",
                        lambda org=org, first=first: (
                            worker.healthy() and cortex.value(org, first) == 1
                        ),
                        90,
                    )

        for org in (acme, globex):
            ended = f"sum(openqoe_views_ended_total{{org='{org}'}})"

            def all_ended(org: str = org, ended: str = ended) -> bool:
                worker.healthy()
                return cortex.value(org, ended) == len(VIEWS)

            wait_for(f"{len(VIEWS)} ended views of {org} in its tenant", all_ended, 90)

        # Each org's series in its own tenant, exactly; none in another tenant.
        for org in (acme, globex):
            for query, expected in EXPECTED_COUNTERS.items():
                promql = query.replace("ORG", org)
                assert cortex.value(org, promql) == pytest.approx(expected), (org, promql)
            orgs = cortex.query(org, 'count by (org) ({__name__=~"openqoe_.+"})')
            assert {series["metric"].get("org") for series in orgs} == {org}
        assert cortex.query(stranger, '{__name__=~"openqoe_.+"}') == []

        # Basic auth reached the gateway on every push, with the tenant of each org.
        assert gateway.refused == 0
        assert {seen["tenant"] for seen in gateway.seen} == {acme, globex}
        assert {seen["path"] for seen in gateway.seen} == {"/api/v1/push"}
        assert {seen["status"] for seen in gateway.seen} <= {200, 204}, gateway.seen[-5:]
        wrong = requests.post(  # noqa: ASYNC210 - the gateway runs in its own thread
            f"{gateway.url}/api/v1/push", data=b"", auth=("openqoe-writer", "nope"), timeout=10
        )
        assert wrong.status_code == 401  # the gateway's check is real
        assert worker.metric("openqoe_processor_push_dropped_items_total") == 0

        check_recording_rules(cortex, acme, globex)
    except BaseException:
        print("gateway saw (last 10):", gateway.seen[-10:], "refused:", gateway.refused)  # noqa: T201
        print("processor log:\n", worker.tail(), "\ncortex log:\n", cortex.tail(30))  # noqa: T201
        raise
    finally:
        gateway.stop()
        assert worker.stop() == 0, worker.tail()


async def post_until_accepted(client: Any, events: list[dict[str, Any]]) -> None:
    """POST like a player: a 503 (Kafka did not acknowledge in time, nothing accepted; the
    shared test broker is sometimes slow) is retried, anything but 202 fails."""
    deadline = time.monotonic() + 60
    while True:
        response = await client.post("/v1/events", json={"events": events})
        if response.status != 503 or time.monotonic() > deadline:
            assert response.status == 202, await response.text()
            return
        await asyncio.sleep(1)


def check_recording_rules(cortex: CortexServer, acme: str, globex: str) -> None:
    """The ruler evaluated our recording rules on the pipeline's data, per tenant: each
    recorded sample equals its expression evaluated by the querier at the sample's time."""
    recorded = {
        "openqoe:views_started:rate5m": 1e-6,
        "openqoe:video_startup_seconds:p95_5m": 1e-6,
        "openqoe:rebuffer_ratio:5m": 1e-6,
        "openqoe:concurrent_viewers:sum": 0,
    }
    expressions = {
        rule["record"]: rule["expr"]
        for group in load_rules.rule_groups([RECORDING_RULES])
        for rule in group["rules"]
    }

    def latest(tenant: str, name: str) -> tuple[float, float] | None:
        result = cortex.query(tenant, f"{name}{{org='{tenant}'}}[30s]")
        if not result:
            return None
        timestamp, value = result[0]["values"][-1]
        return float(timestamp), float(value)

    for tenant in (acme, globex):
        for name, tolerance in recorded.items():

            def finite(tenant: str = tenant, name: str = name) -> tuple[float, float] | None:
                found = latest(tenant, name)
                return found if found and math.isfinite(found[1]) else None

            timestamp, value = wait_for(f"{name} recorded in {tenant}", finite, 60, every_s=1)
            direct = instant_at(cortex, tenant, expressions[name], timestamp, tenant)
            assert value == pytest.approx(direct, rel=tolerance, abs=tolerance), (tenant, name)
        other = globex if tenant == acme else acme
        assert cortex.query(other, f"{{__name__=~'openqoe:.+', org='{tenant}'}}") == []
    assert latest(acme, "openqoe:views_started:rate5m")[1] > 0  # type: ignore[index]

    health = {
        (r["name"], r["health"], r.get("lastError", "")) for r in cortex.evaluated_rules(acme)
    }
    assert {h[1] for h in health} == {"ok"}, [h for h in health if h[1] != "ok"]
    assert {h[0] for h in health} == set(expressions)


def instant_at(cortex: CortexServer, tenant: str, expr: str, at: float, org: str) -> float:
    result = cortex.query(tenant, expr, time=f"{at:.3f}")
    series = [s for s in result if s["metric"].get("org") == org]
    assert len(series) == 1, series
    return float(series[0]["value"][1])
