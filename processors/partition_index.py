"""What the worker keeps in memory per owned partition, rebuilt from the table on first use.

- the partition's **aggregates**, decoded (few: one per label set);
- each **open view** (``open_views``), decoded, as last written, with its labels key
  (processors.series) and, once asked for, its packed leading fields
  (processors.state_codec.view_prefix). The batch step reads views here, not from RocksDB:
  every view of a heartbeating audience has one event per ~10 s, so a batch rarely sees a
  view twice and a read would cost a store lookup and a decode per event (~30 µs of the
  ~100 µs an event costs; ~5 kB of memory per view instead). A flush reads them here too,
  so it never reads or decodes the table;
- a **deadline index**: each view's next expiry deadline (close when open, purge when
  closed) in one-second buckets, so an expiry scan costs O(views due), not O(views kept).

The table (RocksDB + changelog) stays the source of truth: the index is rebuilt from it
when a partition is first used after an assignment and dropped when it is revoked.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field

from processors.aggregates import Aggregate
from processors.series import labels_slot_key
from processors.state_codec import decode_aggregate, decode_view, view_prefix
from processors.table_io import TableIO
from processors.view import State

VIEW_PREFIX = b"v|"
AGG_PREFIX = b"a|"
BUCKET_MS = 1000
# A due view whose close or purge request did not change it is looked at again after this.
RETRY_MS = 60_000


@dataclass(slots=True)
class OpenView:
    view: State  # the object the batch step changes and writes
    labels_key: str
    prefix: bytes | None = None
    # The bytes of the view's last event between its view id and its data
    # (schemas.SectionReader), to skip in the next one if they are the same again.
    middle: bytes | None = None


@dataclass(slots=True)
class PartitionIndex:
    partition: int
    aggregates: dict[bytes, Aggregate] = field(default_factory=dict)
    open_views: dict[bytes, OpenView] = field(default_factory=dict)
    deadlines: dict[bytes, int] = field(default_factory=dict)
    _buckets: dict[int, set[bytes]] = field(default_factory=dict)
    _heap: list[int] = field(default_factory=list)
    _entry: dict[bytes, int] = field(default_factory=dict)  # key -> the bucket it is in
    # One labels key (processors.series) per distinct label set, not one json.dumps per
    # open view per export.
    _labels_keys: dict[tuple[str, ...], str] = field(default_factory=dict)

    @property
    def views_kept(self) -> int:
        """Views in the partition's state, open or recently ended (each has a deadline)."""
        return len(self.deadlines)

    def open_view(self, key: bytes) -> State | None:
        entry = self.open_views.get(key)
        return None if entry is None else entry.view

    def prefix(self, key: bytes) -> bytes | None:
        """The open view's ``processors.state_codec.view_prefix`` (packed on first use:
        those fields never change), or None for a view that is not open."""
        entry = self.open_views.get(key)
        if entry is None:
            return None
        if entry.prefix is None:
            entry.prefix = view_prefix(entry.view)
        return entry.prefix

    def middle(self, key: bytes) -> bytes | None:
        """The middle section of the open view's last event read in sections, if any."""
        entry = self.open_views.get(key)
        return None if entry is None else entry.middle

    def keep_middle(self, key: bytes, middle: bytes) -> None:
        entry = self.open_views.get(key)
        if entry is not None:
            entry.middle = middle

    def exported(self) -> Iterator[tuple[State, str]]:
        """(view, labels key) of every open view, for processors.series.build_samples.

        A generator: a list of 100,000 pairs, alive while the export runs, made the
        interpreter's full garbage collection run over every object of the heap (~0.7 s
        per flush at 100,000 open views, measured)."""
        for entry in self.open_views.values():
            yield entry.view, entry.labels_key

    def note_view(
        self, key: bytes, view: State | None, timeout_ms: float, retention_ms: float
    ) -> None:
        """The view was written (``None``: deleted). An open view is kept as it is: the
        caller no longer changes it except through the batch step, which writes it."""
        if view is None:
            self.open_views.pop(key, None)
            self._unschedule(key)
            return
        if view["closed"]:
            self.open_views.pop(key, None)
            deadline = view["last_received_ms"] + retention_ms
        else:
            entry = self.open_views.get(key)
            if entry is None:
                labels = view["labels"]
                identity = tuple(labels.values())
                labels_key = self._labels_keys.get(identity)
                if labels_key is None:
                    labels_key = self._labels_keys[identity] = labels_slot_key(labels)
                self.open_views[key] = OpenView(view, labels_key)
            else:
                entry.view = view  # the same object, unless the view was read again
            deadline = view["last_received_ms"] + timeout_ms
        self._schedule(key, int(deadline))

    def _schedule(self, key: bytes, deadline: int) -> None:
        # One bucket entry per view: a deadline that moved later (every event of an open
        # view moves it) leaves the entry where it is, and the scan moves it on when that
        # bucket comes due. An entry per write would keep every write of the last
        # timeout (an hour) in memory: ~24 M entries at 6,700 events/s.
        self.deadlines[key] = deadline
        bucket = deadline // BUCKET_MS
        current = self._entry.get(key)
        if current is not None:
            if current <= bucket:
                return
            self._buckets[current].discard(key)
        self._add(key, bucket)

    def _add(self, key: bytes, bucket: int) -> None:
        keys = self._buckets.get(bucket)
        if keys is None:
            keys = self._buckets[bucket] = set()
            heapq.heappush(self._heap, bucket)
        keys.add(key)
        self._entry[key] = bucket

    def _unschedule(self, key: bytes) -> None:
        self.deadlines.pop(key, None)
        bucket = self._entry.pop(key, None)
        if bucket is not None:
            self._buckets[bucket].discard(key)

    def due(self, now_ms: float) -> list[tuple[bytes, bool]]:
        """(key, open) of every view whose deadline has passed. Each is rescheduled
        ``RETRY_MS`` later, in case the request it causes changes nothing."""
        heap, buckets, entry = self._heap, self._buckets, self._entry
        last = int(now_ms) // BUCKET_MS
        due: list[tuple[bytes, bool]] = []
        later: list[bytes] = []
        while heap and heap[0] <= last:
            bucket = heapq.heappop(heap)
            for key in buckets.pop(bucket, ()):
                del entry[key]
                deadline = self.deadlines[key]
                if deadline // BUCKET_MS > bucket:
                    self._add(key, deadline // BUCKET_MS)  # moved later since: move on
                elif deadline > now_ms:
                    later.append(key)  # due later within this same second
                else:
                    due.append((key, key in self.open_views))
        for key in later:
            self._add(key, self.deadlines[key] // BUCKET_MS)
        for key, _ in due:
            self._schedule(key, int(now_ms) + RETRY_MS)
        return due

    @classmethod
    def rebuild(
        cls, partition: int, table: TableIO, timeout_ms: float, retention_ms: float
    ) -> PartitionIndex:
        index = cls(partition)
        for key, value in table.items(partition):
            if key.startswith(VIEW_PREFIX):
                view = decode_view(key[len(VIEW_PREFIX) :].decode(), value)
                if view["partition"] == partition:
                    index.note_view(key, view, timeout_ms, retention_ms)
            elif key.startswith(AGG_PREFIX):
                agg = decode_aggregate(value)
                if agg["partition"] == partition:
                    index.aggregates[key] = agg
        return index
