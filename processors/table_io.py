"""Reads and writes of the faust table for a known partition, outside stream iteration.

faust routes a table write by the partition of the *current stream event* and refuses it
anywhere else (faust-streaming#497). The batch step knows the partition of every write, so
it writes through this: the partition's local store (RocksDB database or memory) and one
changelog message to the same partition, exactly as ``Table.__setitem__`` does inside an
agent. Recovery, standby and rebalance handling stay faust's: they read the same changelog
and the same per-partition stores.

Keys and values are bytes (the table is declared with raw serializers); the batch step
encodes them (processors.state_codec).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol


class TableIO(Protocol):
    def get(self, partition: int, key: bytes) -> bytes | None: ...
    def set(self, partition: int, key: bytes, value: bytes) -> None: ...
    def delete(self, partition: int, key: bytes) -> None: ...
    def items(self, partition: int) -> Iterator[tuple[bytes, bytes]]: ...


class FaustTableIO:
    """``TableIO`` over a faust ``Table`` with a ``rocksdb://`` or ``memory://`` store."""

    def __init__(self, table: Any) -> None:
        self._table = table

    @property
    def _store(self) -> Any:
        return self._table.data

    def _rocksdb(self, partition: int) -> Any | None:
        opener = getattr(self._store, "_db_for_partition", None)
        return None if opener is None else opener(partition)

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
        self._table.send_changelog(partition, key, value, "raw", "raw")

    def delete(self, partition: int, key: bytes) -> None:
        db = self._rocksdb(partition)
        if db is not None:
            db.delete(key)
        else:
            self._store.data.pop(key, None)
        self._table.send_changelog(partition, key, None, "raw", "raw")

    def items(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value) of the partition. The memory store keeps no partitions: it
        yields every key, and the caller keeps the ones of ``partition`` (tests only)."""
        db = self._rocksdb(partition)
        if db is not None:
            yield from db.items()
        else:
            yield from list(self._store.data.items())


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
