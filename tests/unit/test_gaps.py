"""A hole in the offsets faust delivers is filled from Kafka, in order, before going on."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import faust
import pytest

from processors.app import STALL_AFTER_S, Processor
from processors.config import ProcessorConfig
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


def processor_with(reader: FakeReader, tmp_path: Path) -> tuple[Processor, list[int]]:
    config = ProcessorConfig(store="memory://", data_dir=tmp_path, raw_topic=RAW)
    processor = Processor(config)
    processor.reader = reader  # type: ignore[assignment]
    processor.offsets = Offsets(reader.committed, reader.earliest)
    handled: list[int] = []

    async def handle(topic: str, partition: int, offset: int, value: bytes) -> None:
        assert value == reader.log[offset]  # the message itself, not a neighbour
        handled.append(offset)

    processor.handle = handle  # type: ignore[assignment, method-assign]
    return processor, handled


async def test_holes_are_read_from_kafka_and_handled_first(tmp_path: Path) -> None:
    reader = FakeReader(committed=5, log={o: f"m{o}".encode() for o in range(0, 20)})
    processor, handled = processor_with(reader, tmp_path)
    for offset in (5, 6, 9, 10):  # 7 and 8 never delivered
        await processor._in_order(RAW, 2, offset, reader.log[offset])
    assert handled == [5, 6, 7, 8, 9, 10]
    assert reader.reads == [(7, 9)]
    # faust's consumer counts the filled offsets as acknowledged, so commits move on.
    tp = faust.types.TP(RAW, 2)
    assert {7, 8} <= set(processor.app.consumer._acked[tp])
    assert processor.metrics.gap_messages.labels("raw")._value.get() == 2


async def test_a_hole_before_the_first_delivered_message_is_found_from_the_commit(
    tmp_path: Path,
) -> None:
    reader = FakeReader(committed=3, log={o: b"x%d" % o for o in range(0, 10)})
    processor, handled = processor_with(reader, tmp_path)
    await processor._in_order(RAW, 0, 4, reader.log[4])  # 3 skipped right after assignment
    assert handled == [3, 4]


async def test_without_a_commit_the_partition_starts_at_its_first_offset(tmp_path: Path) -> None:
    reader = FakeReader(committed=None, log={o: b"z%d" % o for o in range(2, 10)})
    processor, handled = processor_with(reader, tmp_path)
    await processor._in_order(RAW, 1, 4, reader.log[4])
    assert handled == [2, 3, 4]


async def test_replays_and_revoked_partitions_do_not_count_as_holes(tmp_path: Path) -> None:
    reader = FakeReader(committed=4, log={o: b"y%d" % o for o in range(0, 10)})
    processor, handled = processor_with(reader, tmp_path)
    for offset in (4, 5, 3, 4, 5, 6):  # a replay after 5
        await processor._in_order(RAW, 1, offset, reader.log[offset])
    assert handled == [4, 5, 3, 4, 5, 6]
    assert reader.reads == []
    # Revoked and assigned again: the next owner starts from the group's commit.
    processor.offsets.forget(RAW, 1)
    reader._committed = 6
    await processor._in_order(RAW, 1, 6, reader.log[6])
    assert reader.reads == []
    assert handled[-1] == 6


async def test_an_idle_agent_behind_what_faust_fetched_resyncs_the_partition(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """faust fetched up to 9 but delivered nothing past 5 and nothing else arrives."""
    reader = FakeReader(committed=5, log={o: b"w%d" % o for o in range(0, 10)})
    processor, handled = processor_with(reader, tmp_path)
    sent: list[tuple[bytes, int]] = []

    async def position(tp: Any) -> int:
        return 9

    async def send(*, key: bytes, value: bytes, partition: int) -> None:
        sent.append((value, partition))

    monkeypatch.setattr(processor.app.consumer, "position", position)
    monkeypatch.setattr(processor.control, "send", send)
    monkeypatch.setattr(processor, "_active_partitions", lambda: {3})
    await processor._watch_stalls()
    assert sent == []  # first sight of the partition behind: not yet a stall
    expected, _since = processor._progress[3]
    processor._progress[3] = (expected, time.monotonic() - STALL_AFTER_S - 1)
    await processor._watch_stalls()
    assert sent == [(b'{"op": "resync"}', 3)]
    # The agent, handling that control message in stream context, catches up.
    await processor._resync(3)
    assert handled == [5, 6, 7, 8]
    # A busy agent is never second-guessed.
    processor._last_handled = time.monotonic()
    processor._progress[3] = (9, 0.0)
    await processor._watch_stalls()
    assert len(sent) == 1


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
    import processors.app

    monkeypatch.setattr(processors.app, "GAP_READ_CHUNK", 3)
    reader = FakeReader(committed=0, log={o: b"c%d" % o for o in range(0, 20) if o != 4})
    processor, handled = processor_with(reader, tmp_path)
    await processor._in_order(RAW, 0, 8, reader.log[8])
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
    processor.offsets.handled(RAW, 0, 29)
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
