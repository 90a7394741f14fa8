"""Publishing to Kafka with acknowledgement: the collector's only path to durability.

``publish`` returns only when Kafka acknowledged every message (acks=all, idempotent
producer), or raises ``KafkaUnavailableError``; the handler answers 2xx only after it
returns. The producer connects in the background so the collector can start, answer
``/health`` and report not-ready while Kafka is still coming up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from ingest.config import IngestConfig
from ingest.errors import KafkaUnavailableError

logger = logging.getLogger(__name__)

# (topic, key, value)
Message = tuple[str, bytes | None, bytes]
ProducerFactory = Callable[[], Any]

_RECONNECT_BACKOFF_S = (0.5, 1.0, 2.0, 5.0)


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
                # gather raises the first delivery error; the rest are still awaited below.
                await asyncio.gather(*futures)
        except (KafkaError, TimeoutError) as exc:
            for future in futures:
                # Mark outcomes as retrieved: they are reported to the client as a whole.
                if future.done() and not future.cancelled():
                    future.exception()
            raise KafkaUnavailableError(
                f"Kafka did not acknowledge the events: {type(exc).__name__}",
                retry_after_s=self._config.retry_after_s,
            ) from exc

    async def ready(self, topics: Sequence[str], timeout_s: float = 2.0) -> bool:
        """True when a broker answers a metadata request and every topic exists."""
        producer = self._producer
        if producer is None:
            return False
        try:
            async with asyncio.timeout(timeout_s):
                metadata = await producer.client.fetch_all_metadata()
        except (KafkaError, TimeoutError, OSError):
            return False
        return all(metadata.partitions_for_topic(t) for t in topics)

    async def stop(self) -> None:
        """Flush pending messages and close."""
        if self._connect_task is not None:
            self._connect_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connect_task
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
