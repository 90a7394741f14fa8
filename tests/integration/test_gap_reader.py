"""processors.gaps.MessageReader against the real broker."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from processors.gaps import MessageReader

pytestmark = pytest.mark.kafka


async def test_reads_exact_offset_ranges_and_the_groups_commit(kafka_bootstrap: str) -> None:
    topic = f"test.gaps.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for i in range(10):
            await producer.send_and_wait(topic, f"m{i}".encode(), partition=1)
    finally:
        await producer.stop()
    group = f"test-gaps-{uuid.uuid4().hex[:8]}"
    tp = TopicPartition(topic, 1)
    committer = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    await committer.start()
    try:
        committer.assign([tp])
        await committer.commit({tp: 4})
    finally:
        await committer.stop()

    reader = MessageReader(kafka_bootstrap, group)
    try:
        assert await reader.read(topic, 1, 3, 7) == [(o, f"m{o}".encode()) for o in range(3, 7)]
        assert await reader.read(topic, 1, 9, 10) == [(9, b"m9")]
        assert await reader.committed(topic, 1) == 4
        assert await reader.committed(topic, 0) is None  # this partition never committed
    finally:
        await reader.stop()
