"""EventPublisher.publish: durable (every ack) or KafkaUnavailableError, nothing else."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError, NotLeaderForPartitionError

from ingest.config import IngestConfig
from ingest.errors import KafkaUnavailableError
from ingest.publisher import EventPublisher


class FakeProducer:
    """send() hands out futures the test resolves; records what was sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.futures: list[asyncio.Future[Any]] = []

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> Any:
        self.sent.append((topic, key, value))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        return future


async def publisher(timeout_s: float = 5.0) -> tuple[EventPublisher, FakeProducer]:
    fake = FakeProducer()
    config = IngestConfig(auth_disabled=True, produce_timeout_s=timeout_s)
    pub = EventPublisher(config, producer_factory=lambda: fake)
    await pub.start()
    await pub.wait_connected(1)
    return pub, fake


MESSAGES = [("t", b"k1", b"v1"), ("t", b"k2", b"v2"), ("t", None, b"v3")]


async def test_returns_only_after_every_message_is_acknowledged() -> None:
    pub, fake = await publisher()
    task = asyncio.create_task(pub.publish(MESSAGES))
    await asyncio.sleep(0)
    assert fake.sent == MESSAGES
    fake.futures[2].set_result("md")
    fake.futures[0].set_result("md")
    await asyncio.sleep(0.01)
    assert not task.done()  # the second is not acknowledged yet
    fake.futures[1].set_result("md")
    await asyncio.wait_for(task, 1)


@pytest.mark.parametrize("failing", [0, 1, 2])
async def test_any_failed_acknowledgement_fails_the_whole_publish(failing: int) -> None:
    pub, fake = await publisher()
    task = asyncio.create_task(pub.publish(MESSAGES))
    await asyncio.sleep(0)
    for index, future in enumerate(fake.futures):
        if index == failing:
            future.set_exception(NotLeaderForPartitionError())
        else:
            future.set_result("md")
    with pytest.raises(KafkaUnavailableError, match="NotLeaderForPartitionError"):
        await task


async def test_failures_arriving_after_the_error_are_retrieved() -> None:
    pub, fake = await publisher()
    task = asyncio.create_task(pub.publish(MESSAGES))
    await asyncio.sleep(0)
    fake.futures[0].set_exception(KafkaTimeoutError())
    with pytest.raises(KafkaUnavailableError):
        await task
    # The others fail later; nobody awaits them, and asyncio must not report
    # "Future exception was never retrieved" for them.
    fake.futures[1].set_exception(KafkaTimeoutError())
    fake.futures[2].set_exception(KafkaTimeoutError())
    await asyncio.sleep(0)
    assert not any(f._log_traceback for f in fake.futures)  # type: ignore[attr-defined]


async def test_timeout_fails_the_publish_and_cancels_what_is_pending() -> None:
    pub, fake = await publisher(timeout_s=0.05)
    task = asyncio.create_task(pub.publish(MESSAGES))
    await asyncio.sleep(0)
    fake.futures[0].set_result("md")
    with pytest.raises(KafkaUnavailableError, match="TimeoutError"):
        await task
    assert [f.cancelled() for f in fake.futures] == [False, True, True]


async def test_not_connected_is_unavailable() -> None:
    pub = EventPublisher(IngestConfig(auth_disabled=True))
    with pytest.raises(KafkaUnavailableError, match="not connected"):
        await pub.publish(MESSAGES)


class FakeClient:
    """Answers metadata requests for the topics it knows; records the requests."""

    def __init__(self, known: dict[str, int]) -> None:
        self.known = known
        self.requests: list[Any] = []

    def get_random_node(self) -> int:
        return 1

    async def send(self, node_id: int, request: Any) -> Any:
        from aiokafka.protocol.metadata import MetadataResponse_v1

        self.requests.append(request)
        topics = [
            (0, t, False, [(0, p, 1, [1], [1]) for p in range(self.known[t])])
            if t in self.known
            else (3, t, False, [])  # UNKNOWN_TOPIC_OR_PARTITION
            for t in request._topics
        ]
        return MetadataResponse_v1([(1, "127.0.0.1", 9092, None)], 1, topics)


async def test_ready_asks_only_for_our_topics_and_never_creates_them() -> None:
    pub, fake = await publisher()
    client = FakeClient({"raw": 12, "rejected": 1})
    fake.client = client  # type: ignore[attr-defined]
    assert await pub.ready(("raw", "rejected"))
    assert not await pub.ready(("raw", "missing"))
    # Never every topic of the cluster (a large answer to parse on the event loop), and
    # never a broker-side auto-creation of a missing topic.
    assert [r._topics for r in client.requests] == [["raw", "rejected"], ["raw", "missing"]]
    assert all(r._allow_auto_topic_creation is False for r in client.requests)
