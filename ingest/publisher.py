"""Publishing to Kafka with acknowledgement: the collector's only path to durability.

``publish`` returns only when Kafka acknowledged every message (acks=all, idempotent
producer), or raises ``KafkaUnavailableError``; the handler answers 2xx only after it
returns. The producer connects in the background so the collector can start, answer
``/health`` and report not-ready while Kafka is still coming up.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import struct
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.cluster import ClusterMetadata
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.protocol.metadata import MetadataRequest

from ingest.config import IngestConfig
from ingest.errors import KafkaUnavailableError

logger = logging.getLogger(__name__)

# (topic, key, value)
Message = tuple[str, bytes | None, bytes]
ProducerFactory = Callable[[], Any]

_RECONNECT_BACKOFF_S = (0.5, 1.0, 2.0, 5.0)

_MURMUR_M = 0x5BD1E995
_U32 = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (Java client ``Utils.murmur2``), unsigned 32-bit.

    The same function as ``aiokafka.partitioner.murmur2``, which reads one byte at a time
    and masks after every step; reading 4-byte words at once makes it about 2x cheaper.
    (tests/unit/test_publisher_partitioner.py compares the two.)
    """
    length = len(data)
    h = 0x9747B28C ^ length
    words = length >> 2
    for k in struct.unpack_from(f"<{words}I", data):
        k = (k * _MURMUR_M) & _U32
        k ^= k >> 24
        k = (k * _MURMUR_M) & _U32
        h = ((h * _MURMUR_M) & _U32) ^ k
    tail = length & 3
    if tail:
        at = length - tail
        if tail == 3:
            h ^= data[at + 2] << 16
        if tail >= 2:
            h ^= data[at + 1] << 8
        h ^= data[at]
        h = (h * _MURMUR_M) & _U32
    h ^= h >> 13
    h = (h * _MURMUR_M) & _U32
    h ^= h >> 15
    return h


_recent_murmur2 = functools.lru_cache(maxsize=4096)(murmur2)


class KeyPartitioner:
    """aiokafka's (and the Java client's) default partitioning, with the faster murmur2.

    Keyed messages go to ``murmur2(key) & 0x7FFFFFFF % partitions``, exactly as before, so
    a view_id lands on the same partition as with the default partitioner; messages without
    a key are left to ``DefaultPartitioner``. The events of one request nearly always share
    their view_id (an SDK batches per player), so hashes are remembered for recent keys.
    """

    __slots__ = ()

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return int(DefaultPartitioner()(key, all_partitions, available))
        return all_partitions[(_recent_murmur2(key) & 0x7FFFFFFF) % len(all_partitions)]


def _retrieve_outcome(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class EventPublisher:
    """An aiokafka producer that answers "durable" or "not accepted", nothing in between."""

    def __init__(
        self, config: IngestConfig, producer_factory: ProducerFactory | None = None
    ) -> None:
        self._config = config
        self._factory = producer_factory or self._default_producer
        self._producer: Any = None
        self._connect_task: asyncio.Task[None] | None = None

    def _default_producer(self) -> AIOKafkaProducer:
        timeout_ms = int(self._config.produce_timeout_s * 1000)
        return AIOKafkaProducer(
            bootstrap_servers=self._config.kafka_bootstrap_servers,
            client_id="openqoe-collector",
            acks="all",
            enable_idempotence=True,
            linger_ms=self._config.linger_ms,
            compression_type=self._config.compression_type,
            request_timeout_ms=timeout_ms,
            max_batch_size=256 * 1024,
            partitioner=KeyPartitioner(),
        )

    @property
    def connected(self) -> bool:
        return self._producer is not None

    async def start(self) -> None:
        """Begin connecting in the background; returns at once."""
        self._connect_task = asyncio.create_task(self._connect(), name="kafka-connect")

    async def wait_connected(self, timeout_s: float) -> None:
        """Wait until the producer is connected (used by tools and tests)."""
        assert self._connect_task is not None, "start() first"  # noqa: S101 - programming error
        await asyncio.wait_for(asyncio.shield(self._connect_task), timeout_s)

    async def _connect(self) -> None:
        attempt = 0
        while True:
            producer = self._factory()
            try:
                await producer.start()
            except KafkaError as exc:
                await producer.stop()
                delay = _RECONNECT_BACKOFF_S[min(attempt, len(_RECONNECT_BACKOFF_S) - 1)]
                logger.warning("Kafka not reachable (%s); retrying in %.1fs", exc, delay)
                attempt += 1
                await asyncio.sleep(delay)
                continue
            self._producer = producer
            logger.info("connected to Kafka at %s", self._config.kafka_bootstrap_servers)
            return

    async def publish(self, messages: Sequence[Message]) -> None:
        """Send all messages and wait until Kafka acknowledged every one of them."""
        producer = self._producer
        if producer is None:
            raise KafkaUnavailableError(
                "not connected to Kafka yet", retry_after_s=self._config.retry_after_s
            )
        futures: list[asyncio.Future[Any]] = []
        try:
            async with asyncio.timeout(self._config.produce_timeout_s):
                for topic, key, value in messages:
                    futures.append(await producer.send(topic, value, key=key))
                # One acknowledgement at a time: the messages of a request travel in the
                # same produce requests, so once the first is acked the others usually are
                # too and awaiting them costs nothing. (gather would run one callback per
                # message; that was ~3 us of CPU per event.) The first error is raised.
                for future in futures:
                    await future
        except (KafkaError, TimeoutError) as exc:
            for future in futures:
                if isinstance(exc, TimeoutError):
                    future.cancel()  # no-op when done; aiokafka skips cancelled futures
                # Mark outcomes as retrieved, now or when they arrive: they are reported to
                # the client as a whole.
                future.add_done_callback(_retrieve_outcome)
            raise KafkaUnavailableError(
                f"Kafka did not acknowledge the events: {type(exc).__name__}",
                retry_after_s=self._config.retry_after_s,
            ) from exc

    async def ready(self, topics: Sequence[str], timeout_s: float = 2.0) -> bool:
        """True when a broker answers a metadata request and every topic exists."""
        producer = self._producer
        if producer is None:
            return False
        client = producer.client
        # Metadata for our topics only: for every topic of a large cluster (2,500 here) the
        # answer took ~70 ms of event-loop time to parse, a latency spike on every probe.
        # And never auto-create a missing topic (openqoe-topics creates them).
        request = MetadataRequest(list(topics), allow_auto_topic_creation=False)
        try:
            async with asyncio.timeout(timeout_s):
                node = client.get_random_node()
                if node is None:
                    return False
                response = await client.send(node, request)
        except (KafkaError, TimeoutError, OSError):
            return False
        cluster = ClusterMetadata()
        cluster.update_metadata(response)
        return all(cluster.partitions_for_topic(t) for t in topics)

    async def stop(self) -> None:
        """Flush pending messages and close."""
        if self._connect_task is not None:
            self._connect_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connect_task
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
