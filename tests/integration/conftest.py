"""Fixtures for tests against the real Kafka broker (``deploy/kafka-local.sh start``).

These tests are never skipped: without a reachable broker they fail, loudly.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry

from ingest.app import create_app
from ingest.config import IngestConfig, Secret
from ingest.handlers import STATE
from ingest.topics import TopicsConfig, ensure_topics
from tests.fakes.loki import FakeLoki
from tests.integration.pipeline import PrometheusServer

TEST_KEY = "test-key-org-test"
OTHER_KEY = "test-key-org-other"


# Topics the tests create (fresh_topics, faust's changelogs for test app ids).
TEST_TOPIC_PREFIXES = ("test.", "test-")


async def _list_topics(servers: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=servers, request_timeout_ms=5000)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def _delete_topics(servers: str, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=servers, request_timeout_ms=30000)
    await admin.start()
    try:
        for i in range(0, len(names), 100):
            await admin.delete_topics(names[i : i + 100])
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """The broker; at the end, the topics this session created are deleted.

    Thousands of leftover test topics made a developer broker slow (metadata and
    background work over every partition: collector p99 at 10k ev/s went from ~14 ms to
    60-200 ms), so a session cleans up after itself, and only after itself.
    """
    servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    try:
        before = asyncio.run(asyncio.wait_for(_list_topics(servers), 20))
    except (KafkaError, TimeoutError, OSError) as exc:
        pytest.fail(
            f"Kafka is not reachable at {servers} ({exc!r}). Start it with "
            "`bash deploy/kafka-local.sh start` (Kafka tests are never skipped)."
        )
    yield servers
    try:
        after = asyncio.run(asyncio.wait_for(_list_topics(servers), 20))
        created = sorted(t for t in after - before if t.startswith(TEST_TOPIC_PREFIXES))
        if created:
            asyncio.run(asyncio.wait_for(_delete_topics(servers, created), 120))
    except (KafkaError, TimeoutError, OSError) as exc:  # cleanup only: never fail the run
        print(f"could not delete the session's test topics: {exc!r}")  # noqa: T201


async def fresh_topics(kafka_bootstrap: str, raw_partitions: int = 3) -> TopicsConfig:
    """Create raw/rejected/views/control topics with a unique suffix."""
    suffix = uuid.uuid4().hex[:10]
    config = TopicsConfig(
        kafka_bootstrap_servers=kafka_bootstrap,
        raw_topic=f"test.raw.{suffix}",
        raw_partitions=raw_partitions,
        rejected_topic=f"test.rejected.{suffix}",
        rejected_partitions=1,
        views_topic=f"test.views.{suffix}",
        control_topic=f"test.control.{suffix}",
    )
    await ensure_topics(config)
    return config


@pytest.fixture
async def topics(kafka_bootstrap: str) -> TopicsConfig:
    """Fresh topics for one test."""
    return await fresh_topics(kafka_bootstrap)


def ingest_config(topics: TopicsConfig, **overrides: Any) -> IngestConfig:
    settings: dict[str, Any] = {
        "kafka_bootstrap_servers": topics.kafka_bootstrap_servers,
        "raw_topic": topics.raw_topic,
        "rejected_topic": topics.rejected_topic,
        "api_keys": {Secret(TEST_KEY): "org_test", Secret(OTHER_KEY): "org_other"},
        "cors_origins": ("https://player.example",),
        "produce_timeout_s": 5.0,
        "max_body_bytes": 256 * 1024,
        "max_decompressed_bytes": 1024 * 1024,
        "max_events_per_batch": 100,
        "max_in_flight_events": 1000,
        "org_burst_events": 1000,
    }
    settings.update(overrides)
    return IngestConfig(**settings)


CollectorFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def make_collector(
    aiohttp_client: Any, topics: TopicsConfig
) -> AsyncIterator[CollectorFactory]:
    """Start an in-process collector on loopback, connected to Kafka."""

    async def make(**overrides: Any) -> TestClient[Any, Any]:
        app = create_app(ingest_config(topics, **overrides), registry=CollectorRegistry())
        client: TestClient[Any, Any] = await aiohttp_client(app)
        await app[STATE].publisher.wait_connected(30)
        return client

    return make


async def consume(
    bootstrap: str, topic: str, expected: int, timeout_s: float = 30.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read ``topic`` from the beginning until ``expected`` records arrived or time is up.

    Keeps reading for a short grace period after reaching ``expected`` so that extra
    (duplicate) records would be seen too.
    """
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        deadline = time.monotonic() + timeout_s
        grace_until: float | None = None
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for partition_records in batch.values():
                records.extend(partition_records)
            if len(records) >= expected:
                grace_until = grace_until or time.monotonic() + 0.5
                if time.monotonic() >= grace_until:
                    break
    finally:
        await consumer.stop()
    return records


def auth(key: str = TEST_KEY) -> dict[str, str]:
    return {"X-API-Key": key, "Content-Type": "application/json"}


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """Debian's Prometheus with its remote-write receiver (stands in for Mimir)."""
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fake_loki() -> Iterator[FakeLoki]:
    """A strict fake Loki: Loki itself cannot be installed here (AGPL, no package)."""
    loki = FakeLoki()
    loki.start()
    try:
        yield loki
    finally:
        loki.stop()
