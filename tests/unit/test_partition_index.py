"""The deadline index: each view comes due at its own deadline, once, whatever is kept."""

from __future__ import annotations

from typing import Any

from processors.partition_index import RETRY_MS, PartitionIndex

TIMEOUT = 60_000.0
RETENTION = 120_000.0


def view(last_received_ms: int, closed: bool = False) -> dict[str, Any]:
    return {
        "partition": 0,
        "closed": closed,
        "last_received_ms": last_received_ms,
        "labels": {"org": "o"},
        "state": "playing",
        "live": {},
    }


def test_open_views_come_due_at_the_timeout_closed_ones_at_the_retention() -> None:
    index = PartitionIndex(3)
    index.note_view(b"v|a", view(1_000), TIMEOUT, RETENTION)
    index.note_view(b"v|b", view(1_500, closed=True), TIMEOUT, RETENTION)
    assert index.due(60_999) == []
    assert index.due(61_000) == [(b"v|a", True)]
    assert index.due(61_000) == []  # asked once; again only after RETRY_MS
    assert index.due(61_000 + RETRY_MS - 1) == []
    assert index.due(61_000 + RETRY_MS) == [(b"v|a", True)]
    assert index.due(121_499) == []
    assert index.due(121_500) == [(b"v|b", False)]
    assert index.views_kept == 2
    assert list(index.open_views) == [b"v|a"]


def test_a_view_written_again_is_due_at_its_new_deadline_only() -> None:
    index = PartitionIndex(0)
    index.note_view(b"v|a", view(1_000), TIMEOUT, RETENTION)
    index.note_view(b"v|a", view(30_000), TIMEOUT, RETENTION)  # a later event
    assert index.due(89_999) == []
    assert index.due(90_000) == [(b"v|a", True)]
    index.note_view(b"v|a", view(30_000, closed=True), TIMEOUT, RETENTION)  # closed
    assert index.due(149_999) == []
    assert index.due(150_000) == [(b"v|a", False)]
    index.note_view(b"v|a", None, TIMEOUT, RETENTION)  # purged
    assert index.due(10**9) == []
    assert index.views_kept == 0
    assert not index.open_views


def test_a_scan_looks_only_at_the_buckets_that_are_due() -> None:
    index = PartitionIndex(0)
    for i in range(100_000):
        index.note_view(b"v|%d" % i, view(10_000 + i), TIMEOUT, RETENTION)
    # Nothing due yet: the scan pops no bucket at all.
    assert index.due(69_999) == []
    assert len(index._heap) == len(index._buckets) == 100
    due = index.due(70_999)  # the first second's worth: deadlines 70,000..70,999
    assert sorted(due) == sorted((b"v|%d" % i, True) for i in range(1_000))
    assert len(index._buckets) == 99  # the other 99 untouched
    assert {b"v|%d" % i for i in range(1_000)} <= index._buckets[(70_999 + RETRY_MS) // 1000]


def test_the_export_of_indexed_views_equals_one_from_the_views_themselves() -> None:
    from processors.series import build_samples

    index = PartitionIndex(2)
    for i, org in enumerate(["a", "b", "a", "c", "b"]):
        v = view(1_000 + i)
        v["partition"] = 2
        v["labels"] = {"org": org, "env": "prod"}
        v["live"] = {"c": {"views_started": 1}}
        index.note_view(b"v|%d" % i, v, TIMEOUT, RETENTION)
    indexed = list(index.exported())
    plain = [(v, None) for v, _ in indexed]  # build_samples computes each labels key itself
    assert len({key for _, key in indexed}) == 3
    assert build_samples([], indexed, 2_000, 60_000) == build_samples([], plain, 2_000, 60_000)


def test_writes_keep_one_entry_per_view_and_each_comes_due_at_its_last_deadline() -> None:
    """Heartbeats move a view's deadline every 10 s; the index must not keep an entry per
    write (an hour of them with the default timeout) and must still find the last one."""
    index = PartitionIndex(0)
    for beat in range(50):
        for i in range(1_000):
            index.note_view(b"v|%d" % i, view(beat * 10_000 + i), TIMEOUT, RETENTION)
    assert sum(len(keys) for keys in index._buckets.values()) == 1_000
    last = 49 * 10_000
    assert index.due(last + TIMEOUT - 1) == []  # every stale deadline was moved on, not due
    assert sum(len(keys) for keys in index._buckets.values()) == 1_000
    assert sorted(index.due(last + 999 + TIMEOUT)) == sorted(
        (b"v|%d" % i, True) for i in range(1_000)
    )
    # A deleted view leaves nothing behind.
    index.note_view(b"v|7", None, TIMEOUT, RETENTION)
    assert b"v|7" not in index._entry
    assert all(b"v|7" not in keys for keys in index._buckets.values())
