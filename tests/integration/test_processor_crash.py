"""kill -9 and rebalances: exported counters, histograms and summaries stay exact."""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from ingest.topics import TopicsConfig
from processors.catalog import COUNTERS, HISTOGRAMS
from tests.integration.conftest import CollectorFactory, fresh_topics
from tests.integration.crash_diagnosis import explain
from tests.integration.pipeline import ProcessorWorker, PrometheusServer, processor_env, wait_for
from tests.integration.test_processor_e2e import latest_summaries
from tests.oracle import Expected, generate

pytestmark = pytest.mark.kafka

VIEWS = 120


def exported(prometheus: PrometheusServer, org: str) -> dict[tuple[str, tuple[str, ...]], float]:
    """Every counter and histogram series of ``org``, summed over dimensions and partitions."""
    out: dict[tuple[str, tuple[str, ...]], float] = {}
    for metric in COUNTERS.values():
        by = ",".join(metric.labels)
        for row in prometheus.query(f"sum by ({by}) ({metric.name}{{org='{org}'}})"):
            key = tuple(row["metric"].get(label, "") for label in metric.labels)
            out[(metric.name, key)] = float(row["value"][1])
    for metric in HISTOGRAMS.values():
        for suffix, labels in (
            ("_bucket", (*metric.labels, "le")),
            ("_count", metric.labels),
            ("_sum", metric.labels),
        ):
            by = ",".join(labels)
            query = (
                f"sum by ({by}) ({metric.name}{suffix}{{org='{org}'}})"
                if by
                else f"sum({metric.name}{suffix}{{org='{org}'}})"
            )
            for row in prometheus.query(query):
                key = tuple(row["metric"].get(label, "") for label in labels)
                out[(f"{metric.name}{suffix}", key)] = float(row["value"][1])
    return out


def assert_exact(prometheus: PrometheusServer, org: str, expected: Expected) -> None:
    want = {**expected.counters(), **expected.histograms()}
    got = exported(prometheus, org)
    assert set(got) == set(want), set(got) ^ set(want)
    wrong = {
        key: (got[key], value)
        for key, value in want.items()
        if got[key] != pytest.approx(value, rel=1e-9, abs=1e-6)
    }
    assert not wrong, f"(got, expected): {wrong}"


async def post_views(client: Any, batches: list[list[dict[str, Any]]]) -> None:
    for events in batches:
        response = await client.post("/v1/events", json={"events": events})
        assert response.status == 202, await response.text()


def worker_env(
    topics: TopicsConfig, prometheus: PrometheusServer, app_id: str, data_dir: Path
) -> dict[str, str]:
    return processor_env(
        topics,
        app_id=app_id,
        data_dir=data_dir,
        remote_write_url=prometheus.write_url,
        PROCESSOR_SESSION_TIMEOUT_S="8",
    )


def processed(worker: ProcessorWorker) -> float:
    return worker.metric("openqoe_processor_messages_total", topic="raw")


async def finish_and_check(
    prometheus: PrometheusServer,
    topics: TopicsConfig,
    org: str,
    expected: Expected,
    workers: list[ProcessorWorker],
    app_id: str,
) -> None:
    def ended() -> bool:
        for worker in workers:
            worker.healthy()
        return prometheus.value(f"sum(openqoe_views_ended_total{{org='{org}'}})") == VIEWS

    summaries: dict[str, dict[str, Any]] = {}
    try:
        wait_for(f"{VIEWS} ended views", ended, timeout_s=120, every_s=0.5)
        # One more flush interval so every partition's final values are in.
        await asyncio.sleep(2.5)
        assert_exact(prometheus, org, expected)
        summaries = await latest_summaries(topics, VIEWS)
        assert set(summaries) == set(expected.summaries)
        for view_id, summary in summaries.items():
            want = expected.summaries[view_id]
            for field, value in want.items():
                if isinstance(value, float):
                    assert summary[field] == pytest.approx(value), (view_id, field)
                else:
                    assert summary[field] == value, (view_id, field)
    except BaseException:
        summaries = summaries or await latest_summaries(topics, VIEWS)
        print(await explain(topics, app_id, expected.summaries, summaries))  # noqa: T201 - the failure report
        raise


async def test_kill_9_mid_stream_and_restart_loses_and_doubles_nothing(
    make_collector: CollectorFactory,
    topics: TopicsConfig,
    prometheus: PrometheusServer,
    tmp_path: Path,
) -> None:
    org = f"crash{uuid.uuid4().hex[:8]}"
    views = generate(org, VIEWS, seed=11)
    expected = Expected(views)
    batches = list(views.values())
    env = worker_env(topics, prometheus, f"test-{org}", tmp_path / "worker")
    client = await make_collector(auth_disabled=True)

    first = ProcessorWorker(env, tmp_path / "worker.log")
    wait_for("processor healthy", first.healthy, 60)
    await post_views(client, batches[: VIEWS // 2])
    sent = sum(len(b) for b in batches[: VIEWS // 2])
    # Kill while it is still working through what was sent.
    wait_for("some events processed", lambda: processed(first) >= sent // 3, 60, 0.05)
    first.kill()

    await post_views(client, batches[VIEWS // 2 : 3 * VIEWS // 4])  # accepted while it is down
    second = ProcessorWorker(env, tmp_path / "worker.log")
    wait_for("restarted processor healthy", second.healthy, 60)
    await post_views(client, batches[3 * VIEWS // 4 :])
    try:
        await finish_and_check(prometheus, topics, org, expected, [second], f"test-{org}")
    finally:
        assert second.stop() == 0, second.tail()


async def test_two_workers_rebalance_and_a_kill_keep_numbers_exact(
    make_collector: CollectorFactory,
    prometheus: PrometheusServer,
    kafka_bootstrap: str,
    tmp_path: Path,
) -> None:
    topics = await fresh_topics(kafka_bootstrap, raw_partitions=6)  # room for two owners
    org = f"rebal{uuid.uuid4().hex[:8]}"
    views = generate(org, VIEWS, seed=23)
    expected = Expected(views)
    batches = list(views.values())
    app_id = f"test-{org}"
    client = await make_collector(
        auth_disabled=True, raw_topic=topics.raw_topic, rejected_topic=topics.rejected_topic
    )

    a = ProcessorWorker(worker_env(topics, prometheus, app_id, tmp_path / "a"), tmp_path / "a.log")
    b: ProcessorWorker | None = None
    try:
        wait_for("worker A healthy", a.healthy, 60)
        await post_views(client, batches[: VIEWS // 3])
        b = ProcessorWorker(
            worker_env(topics, prometheus, app_id, tmp_path / "b"), tmp_path / "b.log"
        )
        wait_for("worker B healthy", b.healthy, 60)
        # B joined: the group rebalances and B takes some partitions over.
        owner = b
        wait_for(
            "B owns partitions",
            lambda: (
                processed(owner) > 0
                or (owner.metric("openqoe_processor_lag_messages") >= 0 and _owns(owner))
            ),
            60,
            0.5,
        )
        await post_views(client, batches[VIEWS // 3 : 2 * VIEWS // 3])
        wait_for("B processing", lambda: processed(owner) > 0, 60, 0.2)
        b.kill()  # its partitions move back to A after the session timeout
        await post_views(client, batches[2 * VIEWS // 3 :])
        await finish_and_check(prometheus, topics, org, expected, [a], app_id)
    except BaseException:
        # What the workers said, for the failure report; and no worker outlives the test.
        sys.stderr.write(f"--- worker A\n{a.tail()}\n--- worker B\n{b.tail() if b else ''}\n")
        if b is not None:
            b.kill()
        a.kill()
        raise
    assert a.stop() == 0, a.tail()


def _owns(worker: ProcessorWorker) -> bool:
    import requests

    return (
        "openqoe_processor_lag_messages{" in requests.get(f"{worker.url}/metrics", timeout=5).text
    )
