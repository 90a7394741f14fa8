"""The batch step against ground truth: same numbers in any batch sizes, and after a crash
at any point of the changelog (any prefix durable), replayed from the last commit.

The crash and rebalance tests (tests/integration/test_processor_crash.py) do this with real
processes and Kafka; this one walks through many crash points of one run, with no broker.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from typing import Any

import pytest

from ingest.validation import validate_event
from processors.batch import BatchStep
from processors.dims import DimensionCaps
from processors.partition_index import PartitionIndex
from processors.series import build_samples
from processors.step import RAW
from processors.table_io import DictTableIO
from schemas import (
    player_event_codec,
    player_event_known_view_reader,
    player_event_reader,
    player_event_sections,
)
from tests.oracle import generate

TIMEOUT_MS = 3_600_000.0
RETENTION_MS = 7_200_000.0


def raw_messages(seed: int, views: int = 25, vary_middle: bool = False) -> list[bytes]:
    """Realistic traffic of one partition in arrival order, with some batches resent.

    ``vary_middle``: some events of a view change a field between its view id and its data
    (the app version), so that the batch step cannot always skip that part by comparison.
    """
    rng = random.Random(seed)
    now = int(time.time() * 1000)
    codec = player_event_codec()
    events = [e for script in generate(f"org{seed}", views, seed).values() for e in script]
    if vary_middle:
        events = [
            dict(e, app_version=rng.choice(("1.0", "1.10", "2"))) if rng.random() < 0.3 else e
            for e in events
        ]
    events.sort(key=lambda e: e["event_time"])
    out: list[bytes] = []
    last_of_view = {e["view_id"]: i for i, e in enumerate(events)}
    for i, raw in enumerate(events):
        record = validate_event(raw, now_ms=now, org_id=None)
        assert isinstance(record, dict), record
        encoded = codec.encode(record)
        out.append(encoded)
        if rng.random() < 0.03:  # an SDK retry: the same event (same event_id) again
            out.append(encoded)
        if last_of_view[raw["view_id"]] == i and rng.random() < 0.5:
            # Late events: after the view ended, at a random later point of the stream.
            for _ in range(rng.choice((1, 2))):
                out.insert(rng.randrange(len(out), len(out) + 40), encoded)
    return out


class Worker:
    """A batch step over a table, with its in-memory index (rebuilt from the table)."""

    def __init__(
        self, table: DictTableIO, *, known_view_reader: bool = True, sections: bool = True
    ) -> None:
        self.table = table
        self.indexes: dict[int, PartitionIndex] = {}
        caps = DimensionCaps()
        self.summaries: list[dict[str, Any]] = []
        self.step = BatchStep(
            table,
            self.index,
            lambda partition: self.indexes.pop(partition, None),  # type: ignore[arg-type]
            player_event_reader().decode,
            caps.labels,
            time.time,
            TIMEOUT_MS,
            RETENTION_MS,
            # As the worker decodes: only what the step reads, for a view it already has.
            decode_known=player_event_known_view_reader().decode if known_view_reader else None,
            sections=player_event_sections() if known_view_reader and sections else None,
        )

    def index(self, partition: int) -> PartitionIndex:
        if partition not in self.indexes:
            self.indexes[partition] = PartitionIndex.rebuild(
                partition, self.table, TIMEOUT_MS, RETENTION_MS
            )
        return self.indexes[partition]

    def run(self, messages: Sequence[tuple[int, bytes]]) -> None:
        out = self.step.run(RAW, 0, messages)
        self.summaries.extend(s for _p, s in out.summaries)

    def exported(self) -> list[tuple[Any, ...]]:
        index = self.index(0)
        samples = build_samples(index.aggregates.values(), index.exported(), 1, float("inf"))
        return sorted((tuple(sorted(s.labels.items())), s.value) for s in samples)


def test_the_data_fields_a_known_view_is_read_with_are_those_the_view_logic_reads() -> None:
    # Of an event of a known view, only these fields of data are decoded: a field that
    # processors.view reads and that is not among them would always be None there.
    import re
    from pathlib import Path

    import processors.view
    from schemas.codec import PLAYER_EVENT_KNOWN_VIEW_DATA_FIELDS

    source = Path(processors.view.__file__).read_text()
    read = set(re.findall(r"\bdata(?:\.get\(|\[)\"(\w+)\"", source))
    assert {"bitrate", "player_state"} <= read  # the pattern finds them
    assert read <= set(PLAYER_EVENT_KNOWN_VIEW_DATA_FIELDS), read - set(
        PLAYER_EVENT_KNOWN_VIEW_DATA_FIELDS
    )
    # ...and it reads data in no other way (data.items(), **data, data passed elsewhere).
    code = "\n".join(line.split("#")[0] for line in source.split('"""', 2)[2].splitlines())
    for allowed in (
        r"\bdata(?:\.get\(|\[)\"\w+\"",
        r"\bdata: Mapping\[str, Any\]",
        r"\bdata = event\.get\(\"data\"\) or \{\}",
        r"_start\(view, t, data\)",
        r"_set_rendition\(view, data, ",
    ):
        code = re.sub(allowed, "", code)
    assert not re.findall(r".{20}\bdata\b.{20}", code)


def batches(rng: random.Random, start: int, end: int) -> list[tuple[int, int]]:
    out, at = [], start
    while at < end:
        size = rng.choice((1, 2, 3, 7, 20, 64, 300))
        out.append((at, min(end, at + size)))
        at += size
    return out


def reference(messages: list[bytes]) -> Worker:
    """One message at a time, every event decoded whole."""
    worker = Worker(DictTableIO(), known_view_reader=False)
    for offset, value in enumerate(messages):
        worker.run([(offset, value)])
    return worker


@pytest.mark.parametrize(("seed", "vary_middle"), [(1, False), (2, False), (3, True), (4, True)])
def test_any_batch_sizes_give_the_same_numbers_as_one_message_at_a_time(
    seed: int, vary_middle: bool
) -> None:
    messages = raw_messages(seed, vary_middle=vary_middle)
    expected = reference(messages)
    rng = random.Random(seed)
    worker = Worker(DictTableIO())
    for start, end in batches(rng, 0, len(messages)):
        worker.run([(o, messages[o]) for o in range(start, end)])
    assert worker.exported() == expected.exported()
    assert {s["view_id"]: s for s in worker.summaries} == {
        s["view_id"]: s for s in expected.summaries
    }
    # Fewer writes than messages: each changed view once per batch.
    assert len(worker.table.changelog) < len(messages)


@pytest.mark.parametrize("seed", range(8))
def test_a_crash_at_any_changelog_point_then_a_replay_counts_everything_once(seed: int) -> None:
    messages = raw_messages(100 + seed)
    expected = reference(messages).exported()
    rng = random.Random(seed)
    plan = batches(rng, 0, len(messages))

    first = Worker(DictTableIO())
    ends: list[int] = []  # changelog length after each batch
    for start, end in plan:
        first.run([(o, messages[o]) for o in range(start, end)])
        ends.append(len(first.table.changelog))
    for _ in range(6):
        # The crash: only a prefix of the changelog reached Kafka. The commit covers only
        # batches whose writes were all durable (processors.changelog_flush), maybe fewer.
        durable = rng.randrange(len(first.table.changelog) + 1)
        complete = [i for i, n in enumerate(ends) if n <= durable]
        committed_batch = rng.choice([-1, *complete])
        committed = 0 if committed_batch < 0 else plan[committed_batch][1]

        restored = DictTableIO()
        for partition, key, value in first.table.changelog[:durable]:
            if value is None:
                restored.delete(partition, key)
            else:
                restored.set(partition, key, value)
        second = Worker(restored)
        for start, end in batches(rng, committed, len(messages)):
            second.run([(o, messages[o]) for o in range(start, end)])
        assert second.exported() == expected, (durable, committed)


def test_the_cached_open_views_are_what_the_table_holds() -> None:
    from processors.state_codec import decode_view

    messages = raw_messages(7, views=40)
    worker = Worker(DictTableIO())
    rng = random.Random(7)
    for start, end in batches(rng, 0, len(messages) // 2):  # half way: many views open
        worker.run([(o, messages[o]) for o in range(start, end)])
        index = worker.index(0)
        assert index.open_views, "no open view cached"
        for key, entry in index.open_views.items():
            stored = worker.table.get(0, key)
            assert stored is not None
            assert decode_view(key[2:].decode(), stored) == entry.view
    # Every open view of the table is cached, and nothing else.
    stored_open = {
        key
        for key, value in worker.table.items(0)
        if key.startswith(b"v|") and not decode_view(key[2:].decode(), value)["closed"]
    }
    assert set(worker.index(0).open_views) == stored_open


def test_a_failing_batch_drops_the_partition_index() -> None:
    """The step changes cached views in place: after an unexpected error the partition's
    index must come from the table again, not keep changes that were never written."""
    messages = raw_messages(8)
    worker = Worker(DictTableIO())
    worker.run([(o, messages[o]) for o in range(40)])
    before = worker.index(0)
    decode = worker.step._decode_event
    calls = 0

    def failing(value: bytes) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls == 5:
            raise RuntimeError("a bug")
        return decode(value)

    worker.step._decode_event = failing
    with pytest.raises(RuntimeError):
        worker.run([(o, messages[o]) for o in range(40, 80)])
    assert 0 not in worker.indexes
    worker.step._decode_event = decode
    for offset in range(40, len(messages), 25):
        worker.run([(o, messages[o]) for o in range(offset, min(offset + 25, len(messages)))])
    assert worker.index(0) is not before
    assert worker.exported() == reference(messages).exported()


def test_expiry_requests_close_then_purge_a_view_through_the_batch_step() -> None:
    """The control topic's close and purge requests in one batch and across batches: the
    view ends by timeout, then leaves the table, the cache and the deadline index."""
    import json

    from processors.step import CONTROL

    now = [time.time()]
    table = DictTableIO()
    indexes: dict[int, PartitionIndex] = {}

    def index(partition: int) -> PartitionIndex:
        if partition not in indexes:
            indexes[partition] = PartitionIndex.rebuild(partition, table, 60_000, 120_000)
        return indexes[partition]

    step = BatchStep(
        table,
        index,
        lambda partition: indexes.pop(partition, None),  # type: ignore[arg-type]
        player_event_reader().decode,
        DimensionCaps().labels,
        lambda: now[0],
        60_000,
        120_000,
        decode_known=player_event_known_view_reader().decode,
    )
    messages = raw_messages(9, views=3)[:5]  # the first events of open views
    step.run(RAW, 0, list(enumerate(messages)))
    keys = list(index(0).open_views)
    assert keys
    view_ids = [key[2:].decode() for key in keys]

    def request(op: str, view_id: str) -> bytes:
        return json.dumps({"op": op, "view_id": view_id}).encode()

    now[0] += 3600  # an hour later: past this step's 60 s timeout and 120 s retention
    out = step.run(CONTROL, 0, [(i, request("close", v)) for i, v in enumerate(view_ids)])
    assert out.kinds["closed"] == len(view_ids)
    assert {s["view_id"] for _p, s in out.summaries} == set(view_ids)
    assert not index(0).open_views
    out = step.run(
        CONTROL,
        0,
        [(len(view_ids) + i, request("purge", v)) for i, v in enumerate(view_ids)],
    )
    assert out.kinds["purged"] == len(view_ids)
    assert all(table.get(0, key) is None for key in keys)
    assert index(0).views_kept == 0
    assert all(key not in index(0)._entry for key in keys)
    # The ended views stay counted in the partition's aggregates.
    ended = sum(
        n
        for a in index(0).aggregates.values()
        for k, n in a["c"].items()
        if k.startswith("views_ended")
    )
    assert ended == len(view_ids)
