"""A hole in the offsets faust delivers is filled from Kafka, in order, before going on
(processors.drain); this is the test that catches a skipped message."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
import pytest

from processors.app import Processor
from processors.config import ProcessorConfig
from processors.drain import STALL_AFTER_S
from processors.gaps import Offsets

RAW = "qoe.events.raw"


class FakeReader:
    """Stands in for Kafka: the committed offset and the messages of one partition."""

    def __init__(self, committed: int | None, log: dict[int, bytes]) -> None:
        self._committed = committed
        self.log = log
        self.reads: list[tuple[int, int]] = []

    async def committed(self, topic: str, partition: int) -> int | None:
        return self._committed

    async def earliest(self, topic: str, partition: int) -> int | None:
        return min(self.log, default=None)

    async def read(
        self, topic: str, partition: int, start: int, end: int
    ) -> list[tuple[int, bytes]]:
        self.reads.append((start, end))
        return [(o, self.log[o]) for o in range(start, end) if o in self.log]

    async def stop(self) -> None:
        pass


@dataclass
class FakeMessage:
    """What processors.drain reads of faust's consumer messages."""

    topic: str
    partition: int
    offset: int
    value: bytes
    acked: bool = False

    @property
    def tp(self) -> faust.types.TP:
        return faust.types.TP(self.topic, self.partition)

    def __hash__(self) -> int:
        return hash((self.topic, self.partition, self.offset))


def processor_with(reader: FakeReader, tmp_path: Path) -> tuple[Processor, list[int]]:
    config = ProcessorConfig(store="memory://", data_dir=tmp_path, raw_topic=RAW)
    processor = Processor(config)
    drain = processor.drain
    drain.reader = reader  # type: ignore[assignment]
    drain.offsets = Offsets(reader.committed, reader.earliest)
    handled: list[int] = []

    def process(tag: str, partition: int, messages: Sequence[tuple[int, bytes]]) -> None:
        for offset, value in messages:
            assert value == reader.log[offset]  # the message itself, not a neighbour
            handled.append(offset)

    drain._process = process
    return processor, handled


async def deliver(
    processor: Processor, partition: int, offsets: list[int], log: dict[int, bytes]
) -> None:
    """faust's consumer delivers these offsets of the raw partition as one batch."""
    messages = [FakeMessage(RAW, partition, o, log[o]) for o in offsets]
    await processor.drain._handle(faust.types.TP(RAW, partition), messages)


async def test_holes_are_read_from_kafka_and_handled_first(tmp_path: Path) -> None:
    reader = FakeReader(committed=5, log={o: f"m{o}".encode() for o in range(0, 20)})
    processor, handled = processor_with(reader, tmp_path)
    await deliver(processor, 2, [5, 6], reader.log)
    await deliver(processor, 2, [9, 10], reader.log)  # 7 and 8 never delivered
    assert handled == [5, 6, 7, 8, 9, 10]
    assert reader.reads == [(7, 9)]
    # faust's consumer counts the filled offsets as acknowledged, so commits move on.
    tp = faust.types.TP(RAW, 2)
    assert {7, 8} <= set(processor.app.consumer._acked[tp])
    assert processor.metrics.gap_messages.labels("raw")._value.get() == 2


async def test_a_hole_inside_one_batch_is_filled_in_order(tmp_path: Path) -> None:
    reader = FakeReader(committed=0, log={o: b"i%d" % o for o in range(0, 12)})
    processor, handled = processor_with(reader, tmp_path)
    await deliver(processor, 0, [0, 1, 2, 6, 7], reader.log)
    assert handled == [0, 1, 2, 3, 4, 5, 6, 7]
    assert reader.reads == [(3, 6)]


async def test_a_hole_before_the_first_delivered_message_is_found_from_the_commit(
    tmp_path: Path,
) -> None:
    reader = FakeReader(committed=3, log={o: b"x%d" % o for o in range(0, 10)})
    processor, handled = processor_with(reader, tmp_path)
    await deliver(processor, 0, [4], reader.log)  # 3 skipped right after assignment
    assert handled == [3, 4]


async def test_without_a_commit_the_partition_starts_at_its_first_offset(tmp_path: Path) -> None:
    reader = FakeReader(committed=None, log={o: b"z%d" % o for o in range(2, 10)})
    processor, handled = processor_with(reader, tmp_path)
    await deliver(processor, 1, [4], reader.log)
    assert handled == [2, 3, 4]


async def test_replays_and_revoked_partitions_do_not_count_as_holes(tmp_path: Path) -> None:
    reader = FakeReader(committed=4, log={o: b"y%d" % o for o in range(0, 10)})
    processor, handled = processor_with(reader, tmp_path)
    await deliver(processor, 1, [4, 5], reader.log)
    await deliver(processor, 1, [3, 4, 5, 6], reader.log)  # a replay after 5
    assert handled == [4, 5, 3, 4, 5, 6]
    assert reader.reads == []
    # Revoked and assigned again: the next owner starts from the group's commit.
    processor.drain.forget(RAW, 1)
    reader._committed = 6
    await deliver(processor, 1, [6], reader.log)
    assert reader.reads == []
    assert handled[-1] == 6


async def test_a_partition_fetched_past_while_nothing_arrives_is_filled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """faust fetched up to 9 but delivered nothing past 5 and nothing else arrives."""
    reader = FakeReader(committed=5, log={o: b"w%d" % o for o in range(0, 10)})
    processor, handled = processor_with(reader, tmp_path)

    async def position(tp: Any) -> int:
        return 9

    monkeypatch.setattr(processor.app.consumer, "position", position)
    tps = {faust.types.TP(RAW, 3)}
    drain = processor.drain
    await drain.watch_stalls(tps)
    assert handled == []  # first sight of the partition behind: not yet a stall
    expected, _since = drain._progress[(RAW, 3)]
    drain._progress[(RAW, 3)] = (expected, time.monotonic() - STALL_AFTER_S - 1)
    await drain.watch_stalls(tps)
    assert handled == [5, 6, 7, 8]
    # A busy drain is never second-guessed.
    drain.last_delivered = time.monotonic()
    drain._progress[(RAW, 3)] = (9, 0.0)
    await drain.watch_stalls(tps)
    assert handled == [5, 6, 7, 8]


def test_offsets_track_the_next_expected_offset() -> None:
    offsets = Offsets(_no_commit, _no_commit)
    assert offsets.next_offset("t", 0) is None
    offsets.handled("t", 0, 41)
    assert offsets.next_offset("t", 0) == 42
    offsets.forget("t", 0)
    assert offsets.next_offset("t", 0) is None


async def _no_commit(topic: str, partition: int) -> int | None:
    return None


async def test_a_long_hole_is_read_in_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import processors.drain

    monkeypatch.setattr(processors.drain, "GAP_READ_CHUNK", 3)
    reader = FakeReader(committed=0, log={o: b"c%d" % o for o in range(0, 20) if o != 4})
    processor, handled = processor_with(reader, tmp_path)
    await deliver(processor, 0, [8], reader.log)
    assert reader.reads == [(0, 3), (3, 6), (6, 8)]
    assert handled == [0, 1, 2, 3, 5, 6, 7, 8]  # offset 4 is gone from Kafka (retention)


async def test_a_lookup_finishing_late_does_not_move_the_agent_back() -> None:
    release = asyncio.Event()

    async def slow_commit(topic: str, partition: int) -> int | None:
        await release.wait()
        return 100

    offsets = Offsets(slow_commit, _no_commit)
    lookup = asyncio.create_task(offsets.expected("t", 0))  # e.g. the lag timer
    await asyncio.sleep(0)
    offsets.handled("t", 0, 119)  # meanwhile the agent handled up to 119
    release.set()
    assert await lookup == 120
    assert offsets.next_offset("t", 0) == 120


async def test_lag_counts_from_what_the_agent_handled_not_what_faust_fetched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = FakeReader(committed=10, log={})
    processor, _handled = processor_with(reader, tmp_path)
    monkeypatch.setattr(processor.app.consumer, "highwater", lambda tp: 50)

    async def fetched(tp: Any) -> int:
        return 50  # faust fetched everything

    monkeypatch.setattr(processor.app.consumer, "position", fetched)
    assert await processor._backlog(0) == 40  # nothing handled yet: from the group's commit
    processor.drain.offsets.handled(RAW, 0, 29)
    assert await processor._backlog(0) == 20


async def test_kafka_calls_are_retried_with_a_fresh_client_until_they_succeed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aiokafka.errors import KafkaConnectionError

    import processors.gaps

    monkeypatch.setattr(processors.gaps, "_RETRY_S", (0.0,))
    outcomes: list[Exception | int] = [KafkaConnectionError(), TimeoutError(), 42]
    resets: list[int] = []

    async def call() -> int:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def reset() -> None:
        resets.append(1)

    assert await processors.gaps._retrying("test", call, reset) == 42
    assert len(resets) == 2
