"""Prometheus and Loki outages: buffered data arrives afterwards; overflow is counted."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from ingest.topics import TopicsConfig
from tests.fakes.loki import FakeLoki
from tests.integration.conftest import CollectorFactory
from tests.integration.pipeline import ProcessorWorker, PrometheusServer, start_worker, wait_for
from tests.integration.test_processor_e2e import check_counters, send_views, wait_all_ended
from tests.scenarios import VIEWS

pytestmark = pytest.mark.kafka


def all_views_closed(worker: ProcessorWorker) -> bool:
    return worker.metric("openqoe_processor_messages_total", outcome="closed") >= len(VIEWS)


async def test_prometheus_down_then_back_nothing_lost_within_the_buffer(
    make_collector: CollectorFactory, topics: TopicsConfig, tmp_path: Path
) -> None:
    prometheus = PrometheusServer(tmp_path / "prom")
    org = f"down{uuid.uuid4().hex[:8]}"
    worker = start_worker(topics, tmp_path, org, prometheus.write_url)
    try:
        prometheus.stop()
        outage_started = time.time()
        client = await make_collector(auth_disabled=True)
        await send_views(client, org, org)
        wait_for("all views closed", lambda: all_views_closed(worker), 60)
        wait_for(
            "pushes queued while Prometheus is down",
            lambda: (
                worker.metric("openqoe_processor_push_pending_requests", target="remote_write") >= 3
            ),
            30,
        )
        outage_s = time.time() - outage_started
        prometheus.start()
        wait_all_ended(prometheus, org, worker)
        check_counters(prometheus, org)
        # The samples queued during the outage arrived too, not just the newest one.
        window = f"{int(outage_s) + 60}s"
        samples = prometheus.value(
            f"max(count_over_time(openqoe_views_started_total{{org='{org}'}}[{window}]))"
        )
        assert samples is not None
        assert samples >= 3
        assert worker.metric("openqoe_processor_push_dropped_items_total") == 0
        assert (
            worker.metric(
                "openqoe_processor_push_requests_total", target="remote_write", result="retry"
            )
            > 0
        )
    finally:
        assert worker.stop() == 0, worker.tail()
        prometheus.stop()


async def test_remote_write_overflow_is_counted_and_totals_recover(
    make_collector: CollectorFactory, topics: TopicsConfig, tmp_path: Path
) -> None:
    prometheus = PrometheusServer(tmp_path / "prom")
    org = f"ovf{uuid.uuid4().hex[:8]}"
    worker = start_worker(
        topics, tmp_path, org, prometheus.write_url, PROCESSOR_REMOTE_WRITE_MAX_PENDING="2"
    )
    try:
        prometheus.stop()
        client = await make_collector(auth_disabled=True)
        await send_views(client, org, org)
        wait_for("all views closed", lambda: all_views_closed(worker), 60)
        wait_for(
            "overflow counted",
            lambda: (
                worker.metric(
                    "openqoe_processor_push_dropped_items_total",
                    target="remote_write",
                    reason="overflow",
                )
                > 0
            ),
            30,
        )
        prometheus.start()
        # Counters are cumulative: the newest sample carries every increment, so the
        # totals are exact again even though older samples were dropped.
        wait_all_ended(prometheus, org, worker)
        check_counters(prometheus, org)
    finally:
        assert worker.stop() == 0, worker.tail()
        prometheus.stop()


async def test_loki_down_is_retried_and_loki_rejections_are_dropped_and_counted(
    make_collector: CollectorFactory,
    topics: TopicsConfig,
    prometheus: PrometheusServer,
    fake_loki: FakeLoki,
    tmp_path: Path,
) -> None:
    org = f"loki{uuid.uuid4().hex[:8]}"
    fake_loki.fail_next = 4  # 503 for the next four pushes
    worker = start_worker(topics, tmp_path, org, prometheus.write_url, loki_url=fake_loki.url)
    try:
        client = await make_collector(auth_disabled=True)
        await send_views(client, org, org)
        wait_for(
            "every view line delivered after the 503s",
            lambda: len(fake_loki.lines("view")) == len(VIEWS),
            60,
        )
        assert fake_loki.requests >= 5
        assert (
            worker.metric("openqoe_processor_push_requests_total", target="loki", result="retry")
            >= 1
        )
        assert worker.metric("openqoe_processor_push_dropped_items_total", target="loki") == 0

        fake_loki.fail_status, fake_loki.fail_next = 400, 1  # a 4xx is final: drop, count
        await send_views(client, org, f"{org}b")
        wait_for(
            "a rejected push counted",
            lambda: (
                worker.metric(
                    "openqoe_processor_push_dropped_items_total", target="loki", reason="rejected"
                )
                > 0
            ),
            60,
        )
    finally:
        assert worker.stop() == 0, worker.tail()
