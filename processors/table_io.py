"""Reads and writes of the faust table for a known partition, outside stream iteration.

faust routes a table write by the partition of the *current stream event* and refuses it
anywhere else (faust-streaming#497). The batch step knows the partition of every write, so
it writes through this: the partition's local store (RocksDB database or memory) at once,
and one changelog record per write to the same partition, as ``Table.__setitem__`` does.
Recovery, standby and rebalance handling stay faust's: they read the same changelog and
the same per-partition stores.

The changelog records of a batch go to Kafka as one aiokafka record batch per partition
(``send``), not through faust's producer buffer: that buffer hands messages on one per
event-loop round trip, and under a sustained load it fell behind without bound (so did
every commit and export, which wait for it). The records keep their order (one sender,
one batch after the other per partition), and a batch is in the producer before the
messages it reflects are acknowledged, so faust's commit, which flushes the producer
first, never runs ahead of the changelog.

Keys and values are bytes (the table is declared with raw serializers); the batch step
encodes them (processors.state_codec).

RocksDB's write-ahead log is off for these databases: the changelog is the durable copy,
and the WAL was two thirds of a write's cost (~6 µs of ~2 µs without it, per value).
After a crash a database is as of its last memtable flush, a prefix of its writes that
includes the changelog offset it was persisted to (faust keeps it in the same database),
so faust replays the changelog from there; a clean shutdown flushes the memtables first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from functools import partial
from typing import Any, Protocol

from aiokafka.structs import TopicPartition
from rocksdict import WriteOptions


class TableIO(Protocol):
    def get(self, partition: int, key: bytes) -> bytes | None: ...
    def set(self, partition: int, key: bytes, value: bytes) -> None: ...
    def delete(self, partition: int, key: bytes) -> None: ...
    def items(self, partition: int) -> Iterator[tuple[bytes, bytes]]: ...
    async def send(self) -> None: ...


_UNKNOWN: Any = object()


class FaustTableIO:
    """``TableIO`` over a faust ``Table`` with a ``rocksdb://`` or ``memory://`` store."""

    def __init__(self, table: Any, producer: Any) -> None:
        self._table = table
        self._producer = producer  # faust's Producer; its aiokafka producer sends
        self._pending: dict[int, list[tuple[bytes, bytes | None]]] = {}
        self._opener: Any = _UNKNOWN  # the RocksDB store's per-partition opener, or None
        self._write_options = WriteOptions()
        # A property at runtime; rocksdict's stubs declare it a method.
        self._write_options.disable_wal = True  # type: ignore[method-assign,assignment]

    @property
    def _store(self) -> Any:
        return self._table.data

    def _rocksdb(self, partition: int) -> Any | None:
        # Looked up on first use (the store exists once the table has started), then kept:
        # this runs for every view read and write.
        if self._opener is _UNKNOWN:
            self._opener = getattr(self._store, "_db_for_partition", None)
        if self._opener is None:
            return None
        db = self._opener(partition)
        # Every time (0.2 µs): faust reopens a partition's database after a reassignment,
        # and keeping a reference to tell whether it did would keep the old one open (and
        # its lock held), as faust closes a database by dropping it.
        db.set_write_options(self._write_options)
        return db

    def get(self, partition: int, key: bytes) -> bytes | None:
        db = self._rocksdb(partition)
        if db is not None:
            value: bytes | None = db.get(key)
            return value
        return self._store.data.get(key)  # type: ignore[no-any-return]

    def set(self, partition: int, key: bytes, value: bytes) -> None:
        db = self._rocksdb(partition)
        if db is not None:
            db.put(key, value)
        else:
            self._store.data[key] = value
        self._pending.setdefault(partition, []).append((key, value))

    def delete(self, partition: int, key: bytes) -> None:
        db = self._rocksdb(partition)
        if db is not None:
            db.delete(key)
        else:
            self._store.data.pop(key, None)
        self._pending.setdefault(partition, []).append((key, None))

    def items(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value) of the partition. The memory store keeps no partitions: it
        yields every key, and the caller keeps the ones of ``partition`` (tests only)."""
        db = self._rocksdb(partition)
        if db is not None:
            yield from db.items()
        else:
            yield from list(self._store.data.items())

    async def send(self) -> None:
        """Hand the changelog records written since the last call to the producer.

        Shielded: once the local store has a write, its changelog record must follow even
        if the caller is cancelled (a rebalance stopping faust's fetcher, or shutdown)."""
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        await asyncio.shield(self._send(pending))

    async def _send(self, pending: dict[int, list[tuple[bytes, bytes | None]]]) -> None:
        producer = self._producer._ensure_producer()  # the aiokafka producer
        topic = self._table.changelog_topic.get_topic_name()
        for partition, records in pending.items():
            tp = TopicPartition(topic, partition)
            for delivery, n in await send_batches(producer, topic, partition, records):
                delivery.add_done_callback(partial(self._persisted, tp, n))

    def _persisted(self, tp: TopicPartition, n: int, done: asyncio.Future[Any]) -> None:
        # As faust's own changelog callback does: the offset the local store has up to,
        # so a clean restart reads only the changelog's tail.
        if not done.cancelled() and done.exception() is None:
            self._store.set_persisted_offset(tp, done.result().offset + n - 1)


async def send_batches(
    producer: Any, topic: str, partition: int, records: Iterable[tuple[bytes, bytes | None]]
) -> list[tuple[asyncio.Future[Any], int]]:
    """Hand ``records`` (key, value) to an aiokafka producer as record batches for one
    partition, in order; (delivery future, records in the batch) per batch. A batch append
    costs a fraction of a ``send()`` per record."""
    out = []
    batch, count = producer.create_batch(), 0
    for key, value in records:
        if batch.append(key=key, value=value, timestamp=None) is None:  # full
            out.append((await producer.send_batch(batch, topic, partition=partition), count))
            batch, count = producer.create_batch(), 0
            batch.append(key=key, value=value, timestamp=None)
        count += 1
    out.append((await producer.send_batch(batch, topic, partition=partition), count))
    return out


class DictTableIO:
    """``TableIO`` in plain dicts, for tests and benchmarks of the batch step."""

    def __init__(self) -> None:
        self.partitions: dict[int, dict[bytes, bytes]] = {}
        self.changelog: list[tuple[int, bytes, bytes | None]] = []

    def get(self, partition: int, key: bytes) -> bytes | None:
        return self.partitions.get(partition, {}).get(key)

    def set(self, partition: int, key: bytes, value: bytes) -> None:
        self.partitions.setdefault(partition, {})[key] = value
        self.changelog.append((partition, key, value))

    def delete(self, partition: int, key: bytes) -> None:
        self.partitions.get(partition, {}).pop(key, None)
        self.changelog.append((partition, key, None))

    def items(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        yield from list(self.partitions.get(partition, {}).items())

    async def send(self) -> None:
        pass
