"""The worker's hot loop: batches from faust's own consumer, straight to the batch step.

faust's ``Fetcher`` service runs ``Consumer._drain_messages``, which hands every message to
the conductor, then to a channel, a stream and an agent: two asyncio tasks and several
futures per message, ~125 CPU-µs per event on this machine before any work
(docs/benchmarks.md). ``BatchDrain`` is installed in its place on the app's consumer. It
does what faust's ``Consumer.getmany`` does (the same fetches, group membership,
assignment, flow control and seek on rebalance) once per topic partition instead of once
per message, passes messages of any other topic (the changelog during recovery) to faust's
conductor as before, and gives the raw and control topics' records to the batch step one
topic partition at a time. A batch in progress sits in the consumer's set of unacknowledged
messages, and its offsets are acknowledged as ``Consumer.ack`` does, so faust's offset
commits, ``wait_empty`` on revocation and shutdown work unchanged.

Every message of an owned partition is processed, in order, even when faust skips one
(processors.gaps): a batch that starts past the expected offset, or a partition that was
fetched past while nothing arrived, is filled from Kafka first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import faust
from faust.types.tuples import ack_lock
from mode.utils.futures import notify

from processors.gaps import MessageReader, Offsets

logger = logging.getLogger(__name__)

# A raw partition that was fetched past while nothing was delivered for this long is
# stalled: faust dropped messages it will not deliver (seen after rebalances).
STALL_AFTER_S = 5.0
GAP_READ_CHUNK = 2000  # messages read from Kafka at a time when filling a hole
# The batch step runs without awaiting; a long poll is cut into slices of this many
# messages with a yield to the event loop in between (web, timers, heartbeats).
SLICE = 200

Process = Callable[[str, int, Sequence[tuple[int, bytes]]], None]
Send = Callable[[], Awaitable[None]]
GapCounter = Callable[[str, int], None]


class BatchDrain:
    def __init__(
        self,
        app: faust.App,
        tags: Mapping[str, str],
        process: Process,
        send: Send,
        offsets: Offsets,
        reader: MessageReader,
        on_gap: GapCounter,
    ) -> None:
        self._app = app
        self._tags = dict(tags)  # topic name -> tag (processors.step RAW / CONTROL)
        self._process = process
        self._send = send  # the changelog records of what was processed (processors.table_io)
        self.offsets = offsets
        self.reader = reader
        self._on_gap = on_gap
        self.last_delivered = 0.0
        # raw partition -> (next offset to handle, when it was first seen unchanged)
        self._progress: dict[tuple[str, int], tuple[int, float]] = {}
        # Held while a batch (or a gap fill) is processed: timers that read the partition
        # indexes and revocation wait for it.
        self.lock = asyncio.Lock()

    def install(self) -> None:
        """Take the place of faust's per-message drain on the app's consumer."""
        self._app.consumer._drain_messages = self._drain  # type: ignore[attr-defined]

    async def _drain(self, fetcher: Any) -> None:
        consumer: Any = self._app.consumer
        app: Any = self._app
        callback = consumer.callback
        to_message = consumer._to_message
        read_offsets = consumer._read_offset
        tags = self._tags
        stopped = consumer._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        try:
            while not (stopped() or fetcher_stopped()):
                await asyncio.sleep(0)
                # What faust's Consumer.getmany does, once per topic partition instead of
                # once per message (with a Message object, an async generator step, a
                # weak-set entry and an ack each: ~15 % of a worker's CPU under load).
                records, active = await consumer._wait_next_records(1.0)
                if records is None or consumer.should_stop:
                    continue
                if not consumer.flow_active:
                    with contextlib.suppress(Exception):  # as faust: logged there, retried
                        await consumer.perform_seek()
                    continue
                generation = app.consumer_generation_id
                batch: list[tuple[Any, list[Any]]] = []
                for tp, tp_records in records.items():
                    if not consumer.flow_active or app.consumer_generation_id != generation:
                        break  # a rebalance began: faust seeks back to the commits
                    if (
                        active is not None
                        and tp not in active
                        and tp not in consumer._buffered_partitions
                    ) or not tp_records:
                        continue
                    app.monitor.track_tp_end_offset(tp, consumer.highwater(tp))
                    if tp.topic in tags:
                        batch.append((tp, tp_records))
                        read_offsets[tp] = tp_records[-1].offset
                        continue
                    for record in tp_records:  # another topic: to faust, as before
                        message = to_message(tp, record)
                        await consumer.wait_first(callback(message), consumer.suspend_flow.wait())
                        read_offsets[tp] = message.offset
                if batch:
                    # Pending until processed: revocation (faust's wait_empty) waits for it.
                    in_flight = _InFlight(sum(len(r) for _, r in batch))
                    consumer._unacked_messages.add(in_flight)
                    try:
                        async with self.lock:
                            for tp, tp_records in batch:
                                await self._handle(tp, tp_records)
                    finally:
                        in_flight.acked = True
                        consumer._unacked_messages.discard(in_flight)
                        notify(consumer._waiting_for_ack)  # as Consumer.ack: wake wait_empty
                    self.last_delivered = time.monotonic()
        except consumer.consumer_stopped_errors:
            if self._app.should_stop:
                logger.info("broker stopped the consumer; shutting down")
                return
            raise

    async def _handle(self, tp: Any, records: Sequence[Any]) -> None:
        """Process ``records`` (anything with ``offset`` and ``value``, ascending) of one
        topic partition, then acknowledge them to faust's consumer."""
        topic, partition = tp.topic, tp.partition
        tag = self._tags[topic]
        offsets = self.offsets
        consumer: Any = self._app.consumer
        expected = offsets.next_offset(topic, partition)
        if expected is None:
            expected = await offsets.expected(topic, partition)
        start = 0
        while start < len(records):
            first = records[start].offset
            if expected is not None and first > expected:
                await self._fill(tp, tag, expected, first)
            # A run of consecutive offsets (a replay, offset < expected, is processed too:
            # processors.step counts it once), at most SLICE long.
            end = start + 1
            while (
                end < len(records)
                and end - start < SLICE
                and records[end].offset == records[end - 1].offset + 1
            ):
                end += 1
            run = [(r.offset, r.value or b"") for r in records[start:end]]
            self._process(tag, partition, run)
            await self._send()  # before the acks: faust commits only what is acked
            last = run[-1][0]
            offsets.handled(topic, partition, last)
            expected = last + 1
            mark_acked(consumer, tp, [offset for offset, _ in run])
            start = end
            if start < len(records):
                await asyncio.sleep(0)

    async def _fill(self, tp: Any, tag: str, start: int, end: int) -> None:
        logger.warning(
            "%s partition %s: offsets %s to %s were not delivered by faust; "
            "reading them from Kafka and processing them",
            tp.topic,
            tp.partition,
            start,
            end - 1,
        )
        # In chunks: a stalled partition can be far behind, and each read has a deadline.
        for chunk_start in range(start, end, GAP_READ_CHUNK):
            chunk_end = min(end, chunk_start + GAP_READ_CHUNK)
            missing = await self.reader.read(tp.topic, tp.partition, chunk_start, chunk_end)
            for i in range(0, len(missing), SLICE):
                part = missing[i : i + SLICE]
                self._process(tag, tp.partition, part)
                await self._send()
                self.offsets.handled(tp.topic, tp.partition, part[-1][0])
                await asyncio.sleep(0)
            self._on_gap(tag, len(missing))
            mark_acked(self._app.consumer, tp, [o for o, _ in missing])

    async def watch_stalls(self, partitions: set[Any]) -> None:
        """Fill what faust fetched but never delivered for a partition, when nothing was
        delivered for ``STALL_AFTER_S`` (no later message may come to reveal the hole).
        While batches keep arriving, the next one of each partition shows any hole."""
        consumer: Any = self._app.consumer
        now = time.monotonic()
        if now - self.last_delivered < STALL_AFTER_S:
            self._progress.clear()
            return
        for tp in partitions:
            key = (tp.topic, tp.partition)
            expected = await self.offsets.expected(tp.topic, tp.partition)
            fetched = await consumer.position(tp)
            if expected is None or fetched is None or fetched <= expected:
                self._progress.pop(key, None)
                continue
            seen = self._progress.get(key)
            if seen is None or seen[0] != expected:
                self._progress[key] = (expected, now)
            elif now - seen[1] >= STALL_AFTER_S:
                logger.warning(
                    "%s partition %s: fetched up to %s but processed only up to %s after "
                    "%.0fs; reading the rest from Kafka",
                    tp.topic,
                    tp.partition,
                    fetched,
                    expected,
                    now - seen[1],
                )
                self._progress.pop(key, None)
                async with self.lock:
                    # Re-read under the lock: a batch may have moved it meanwhile.
                    current = self.offsets.next_offset(tp.topic, tp.partition)
                    if current is None or current < fetched:
                        start = expected if current is None else current
                        await self._fill(tp, self._tags[tp.topic], start, fetched)

    def forget(self, topic: str, partition: int) -> None:
        self.offsets.forget(topic, partition)
        self._progress.pop((topic, partition), None)


class _InFlight:
    """A batch being processed, in faust's set of unacknowledged messages (as a delivered
    message is) so that revocation and shutdown wait for it; ``refcount`` is for faust's
    log line about what it waits for."""

    __slots__ = ("__weakref__", "acked", "refcount")

    def __init__(self, messages: int) -> None:
        self.acked = False
        self.refcount = messages

    def __repr__(self) -> str:
        return f"<batch of {self.refcount} messages being processed>"


def mark_acked(consumer: Any, tp: faust.types.TP, offsets: list[int]) -> None:
    """Record ``offsets`` as acknowledged in faust's consumer, as ``Consumer.ack`` does for
    each delivered message, so its commits move past them."""
    with ack_lock:
        committed = consumer._committed_offset[tp]
        acked_index = consumer._acked_index[tp]
        acked = consumer._acked[tp]
        n = 0
        for offset in offsets:
            if (committed is None or offset >= committed) and offset not in acked_index:
                acked_index.add(offset)
                acked.append(offset)
                n += 1
        consumer._n_acked += n
