"""openqoe-topics against the real broker: create, check, and refuse a partition mismatch."""

from __future__ import annotations

import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from ingest.topics import TopicMismatchError, TopicsConfig, ensure_topics

pytestmark = pytest.mark.kafka


def config(bootstrap: str, suffix: str, partitions: int) -> TopicsConfig:
    return TopicsConfig(
        kafka_bootstrap_servers=bootstrap,
        raw_topic=f"test.raw.{suffix}",
        raw_partitions=partitions,
        rejected_topic=f"test.rej.{suffix}",
        views_topic=f"test.views.{suffix}",
        control_topic=f"test.ctl.{suffix}",
        raw_retention_ms=3_600_000,
    )


async def test_check_mode_reports_missing_topics_and_creates_nothing(kafka_bootstrap: str) -> None:
    wanted = config(kafka_bootstrap, uuid.uuid4().hex[:8], 4)
    with pytest.raises(TopicMismatchError) as info:
        await ensure_topics(wanted, create=False)
    assert f"topic {wanted.raw_topic} does not exist" in str(info.value)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        assert wanted.raw_topic not in await admin.list_topics()
    finally:
        await admin.close()


async def test_create_then_check_then_refuse_a_different_partition_count(
    kafka_bootstrap: str,
) -> None:
    suffix = uuid.uuid4().hex[:8]
    created = await ensure_topics(config(kafka_bootstrap, suffix, 4))
    assert f"created test.raw.{suffix} (4 partitions)" in created
    assert f"created test.ctl.{suffix} (4 partitions)" in created  # co-partitioned with raw

    again = await ensure_topics(config(kafka_bootstrap, suffix, 4), create=False)
    assert f"test.raw.{suffix}: ok (4 partitions)" in again

    # Other settings that differ are reported, not silently accepted.
    drift = config(kafka_bootstrap, suffix, 4)
    drift = TopicsConfig(
        **{
            **{f: getattr(drift, f) for f in drift.__dataclass_fields__},
            "raw_retention_ms": 7_200_000,
        }
    )
    (raw_line,) = [
        line for line in await ensure_topics(drift) if line.startswith(f"test.raw.{suffix}")
    ]
    assert "retention.ms=3600000 (configured 7200000)" in raw_line

    with pytest.raises(TopicMismatchError) as info:
        await ensure_topics(config(kafka_bootstrap, suffix, 6))
    message = str(info.value)
    assert f"topic test.raw.{suffix} has 4 partitions but 6 are configured" in message
    assert "Operator action" in message
