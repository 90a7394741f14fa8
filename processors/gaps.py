"""Every message of an owned partition is processed, in order, even when faust skips one
(used by processors.drain).

faust-streaming can hand the drain a partition's messages with a hole in them right after
a rebalance or a restart (seen in the crash test: offset 137 never delivered, 136 and 138
were; upstream reports: faust-streaming/faust#216, #221, robinhood/faust#115). Its commit
then moves past a one-message hole (``Consumer._new_offset`` accepts a gap of one), so the
message is lost for good and its view's counts with it.

``Offsets`` knows, per owned topic partition, the next offset the drain must see: the
group's committed offset when the partition was assigned, then one past each message
handled. When a later offset arrives, ``MessageReader`` reads the missing ones straight
from Kafka so the drain processes them first, and they are marked acknowledged in
faust's consumer so its commit can move on. A message seen again after a hole was filled
is a replay, which the processor already counts once (processors.step, processors.batch).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

logger = logging.getLogger(__name__)
T = TypeVar("T")

_RETRY_S = (0.5, 1.0, 2.0, 5.0)
# One attempt at a Kafka call; past it the client is rebuilt and the call retried.
_ATTEMPT_TIMEOUT_S = 15.0


OffsetLookup = Callable[[str, int], Awaitable[int | None]]


class Offsets:
    """The next offset the drain must handle, per (topic, partition) it owns."""

    def __init__(self, committed: OffsetLookup, earliest: OffsetLookup) -> None:
        self._committed = committed
        self._earliest = earliest
        self._next: dict[tuple[str, int], int] = {}

    async def expected(self, topic: str, partition: int) -> int | None:
        """The offset that must come next: the group's commit, or where the partition's log
        starts when the group never committed (faust reads from the earliest offset then).
        None only when neither is known."""
        key = (topic, partition)
        if key not in self._next:
            start = await self._committed(topic, partition)
            if start is None:
                start = await self._earliest(topic, partition)
            if start is None:
                return None
            # The agent may have handled messages while this was looked up (a timer asks
            # too): what it handled wins.
            self._next.setdefault(key, start)
        return self._next[key]

    def handled(self, topic: str, partition: int, offset: int) -> None:
        self._next[(topic, partition)] = offset + 1

    def next_offset(self, topic: str, partition: int) -> int | None:
        return self._next.get((topic, partition))

    def forget(self, topic: str, partition: int) -> None:
        """The partition was revoked: the next owner starts from the committed offset."""
        self._next.pop((topic, partition), None)


class MessageReader:
    """Reads given offsets of a topic partition with a plain consumer (no group)."""

    def __init__(self, bootstrap_servers: str, group_id: str) -> None:
        self._bootstrap = bootstrap_servers
        self._group_id = group_id
        self._consumer: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None

    async def committed(self, topic: str, partition: int) -> int | None:
        """The group's committed offset for the partition (None if it never committed)."""
        tp = TopicPartition(topic, partition)

        async def once() -> int | None:
            if self._admin is None:
                admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap)
                await admin.start()
                self._admin = admin
            offsets = await self._admin.list_consumer_group_offsets(self._group_id, partitions=[tp])
            meta = offsets.get(tp)
            return None if meta is None or meta.offset < 0 else int(meta.offset)

        return await _retrying("read the committed offset", once, self._close_admin)

    async def earliest(self, topic: str, partition: int) -> int | None:
        """The first offset the partition still has."""
        tp = TopicPartition(topic, partition)

        async def once() -> int | None:
            consumer = await self._ensure_consumer()
            return int((await consumer.beginning_offsets([tp]))[tp])

        return await _retrying("read the first offset", once, self._close_consumer)

    async def read(
        self, topic: str, partition: int, start: int, end: int
    ) -> list[tuple[int, bytes]]:
        """(offset, value) of every message in [start, end) that Kafka still has.

        Retries while Kafka is unreachable: giving up would let the hole be committed.
        """
        tp = TopicPartition(topic, partition)
        return await _retrying(
            "read skipped messages",
            lambda: self._read_once(tp, start, end),
            self._close_consumer,
        )

    async def _read_once(self, tp: TopicPartition, start: int, end: int) -> list[tuple[int, bytes]]:
        consumer = await self._ensure_consumer()
        consumer.assign([tp])
        first = (await consumer.beginning_offsets([tp]))[tp]
        position = max(start, first)  # older messages were deleted by retention
        consumer.seek(tp, position)
        out: list[tuple[int, bytes]] = []
        while position < end:
            batch = await consumer.getmany(tp, timeout_ms=1000, max_records=end - position)
            for record in batch.get(tp, []):
                if record.offset >= end:
                    break
                out.append((record.offset, record.value or b""))
            position = await consumer.position(tp)
        return out

    async def _ensure_consumer(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
            )
            await consumer.start()
            self._consumer = consumer
        return self._consumer

    async def stop(self) -> None:
        await self._close_consumer()
        await self._close_admin()

    async def _close_consumer(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(Exception):
                await consumer.stop()

    async def _close_admin(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            with contextlib.suppress(Exception):
                await admin.close()


async def _retrying(
    what: str, call: Callable[[], Awaitable[T]], reset: Callable[[], Awaitable[None]]
) -> T:
    """``call()`` until it succeeds, each attempt with a deadline; after a failure the
    client is rebuilt (``reset``) and the next attempt waits a little longer."""
    attempt = 0
    while True:
        try:
            async with asyncio.timeout(_ATTEMPT_TIMEOUT_S):
                return await call()
        except (KafkaError, TimeoutError) as exc:
            await reset()
            delay = _RETRY_S[min(attempt, len(_RETRY_S) - 1)]
            logger.error("could not %s (%s); retrying in %.1fs", what, exc, delay)
            await asyncio.sleep(delay)
            attempt += 1
