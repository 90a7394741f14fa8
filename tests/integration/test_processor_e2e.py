"""Scripted views through collector, Kafka and processor; ground truth checked in the
real Prometheus (remote write), on qoe.views, and in a strict fake Loki."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from ingest.topics import TopicsConfig
from schemas import SingleObjectCodec, load_schema
from tests.fakes.loki import FakeLoki
from tests.integration.conftest import CollectorFactory, consume
from tests.integration.pipeline import ProcessorWorker, PrometheusServer, start_worker, wait_for
from tests.scenarios import EXPECTED_COUNTERS, EXPECTED_VIEWS, VIEWS, view_events

pytestmark = pytest.mark.kafka


async def send_views(client: Any, org: str, prefix: str) -> dict[str, list[dict[str, Any]]]:
    views = view_events(org, prefix, int(time.time() * 1000) - 300_000)
    for events in views.values():
        response = await client.post("/v1/events", json={"events": events})
        assert response.status == 202, await response.text()
    return views


def check_counters(prometheus: PrometheusServer, org: str) -> None:
    for query, expected in EXPECTED_COUNTERS.items():
        promql = query.replace("ORG", org)
        value = prometheus.value(promql)
        assert value == pytest.approx(expected), f"{promql}: got {value}, expected {expected}"


def wait_all_ended(
    prometheus: PrometheusServer, org: str, worker: ProcessorWorker | None = None
) -> None:
    query = f"sum(openqoe_views_ended_total{{org='{org}'}})"

    def ended() -> bool:
        if worker is not None:
            worker.healthy()
        return prometheus.value(query) == len(VIEWS)

    wait_for(f"{len(VIEWS)} ended views in Prometheus", ended, timeout_s=90)


async def latest_summaries(topics: TopicsConfig, expected: int) -> dict[str, dict[str, Any]]:
    records = await consume(topics.kafka_bootstrap_servers, topics.views_topic, expected=expected)
    codec = SingleObjectCodec(load_schema("view_summary"), logical_types=False)
    summaries: dict[str, dict[str, Any]] = {}
    for record in records:
        summary = codec.decode(record.value)
        assert record.key == summary["view_id"].encode()
        previous = summaries.get(summary["view_id"])
        # At-least-once: a view may be published twice, but always with the same values.
        assert previous is None or previous == summary
        summaries[summary["view_id"]] = summary
    return summaries


def check_summaries(summaries: dict[str, dict[str, Any]], prefix: str) -> None:
    assert set(summaries) == {f"{prefix}-{name}" for name in VIEWS}
    for name, expected in EXPECTED_VIEWS.items():
        summary = summaries[f"{prefix}-{name}"]
        for field, value in expected.items():
            assert summary[field] == pytest.approx(value), (name, field, summary[field])


async def test_scripted_views_give_exact_counters_histograms_summaries_and_logs(
    make_collector: CollectorFactory,
    topics: TopicsConfig,
    prometheus: PrometheusServer,
    fake_loki: FakeLoki,
    tmp_path: Path,
) -> None:
    org = f"e2e{uuid.uuid4().hex[:8]}"
    worker = start_worker(topics, tmp_path, org, prometheus.write_url, loki_url=fake_loki.url)
    try:
        client = await make_collector(auth_disabled=True)
        await send_views(client, org, org)
        wait_all_ended(prometheus, org, worker)
        check_counters(prometheus, org)
        assert prometheus.value(f"sum(openqoe_active_views{{org='{org}'}})") == 0
        assert prometheus.value(f"sum(openqoe_concurrent_viewers{{org='{org}'}})") == 0
        check_summaries(await latest_summaries(topics, len(VIEWS)), org)

        wait_for("Loki lines", lambda: len(fake_loki.lines("view")) >= len(VIEWS), 30)
        views = fake_loki.lines("view")
        assert len(views) == len(VIEWS)
        assert fake_loki.rejected == []
        assert {line["labels"]["kind"] for line in views} == {"view"}
        assert set(views[0]["labels"]) == {"org", "env", "kind"}  # ids are metadata, not labels
        assert {line["metadata"]["view_id"] for line in views} == {f"{org}-{n}" for n in VIEWS}
        errors = fake_loki.lines("error")
        assert {e["metadata"]["view_id"] for e in errors} == {
            f"{org}-startup_failure",
            f"{org}-business",
        }
        assert worker.metric("openqoe_processor_push_dropped_items_total") == 0
    finally:
        assert worker.stop() == 0, worker.tail()
