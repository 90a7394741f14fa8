"""The RocksDB store's memory is bounded per partition (faust's defaults are not)."""

from __future__ import annotations

from pathlib import Path

from processors.app import ROCKSDB_OPTIONS, Processor
from processors.config import ProcessorConfig


def test_each_partition_database_gets_small_memtables_and_block_cache(tmp_path: Path) -> None:
    processor = Processor(ProcessorConfig(store="rocksdb://", data_dir=tmp_path))
    options = processor.table.data.rocksdb_options  # type: ignore[attr-defined]
    assert options.write_buffer_size == ROCKSDB_OPTIONS["write_buffer_size"] == 8 * 2**20
    assert options.max_write_buffer_number == 2
    assert options.block_cache_size == 16 * 2**20
    # What faust opens each partition's database with, and a database opens with it.
    db = options.open(tmp_path / "p0.db")
    db[b"k"] = b"v"
    assert db[b"k"] == b"v"
    db.close()
    assert ROCKSDB_OPTIONS["write_buffer_size"] == 8 * 2**20  # faust did not change ours


def test_writes_skip_rocksdb_write_ahead_log(tmp_path: Path) -> None:
    """The changelog is the durable copy (processors.table_io): a write through the table
    IO lands in the partition's database but appends nothing to its write-ahead log."""
    processor = Processor(ProcessorConfig(store="rocksdb://", data_dir=tmp_path))
    io = processor.table_io
    for i in range(200):
        io.set(3, b"v|%d" % i, b"x" * 400)
    assert io.get(3, b"v|7") == b"x" * 400
    store = processor.table.data
    db_path = store.partition_path(3)  # type: ignore[attr-defined]
    logs = list(Path(db_path).glob("*.log"))
    assert logs, list(Path(db_path).iterdir())
    assert sum(p.stat().st_size for p in logs) < 10_000  # 200 x 400 B would be ~85 kB


def test_with_the_wal_a_write_does_reach_the_log(tmp_path: Path) -> None:
    """The check above can fail: the same writes with rocksdict's defaults fill the log."""
    from rocksdict import Options, Rdict

    options = Options(raw_mode=True)
    options.create_if_missing(True)
    db = Rdict(str(tmp_path / "db"), options=options)
    for i in range(200):
        db.put(b"v|%d" % i, b"x" * 400)
    assert sum(p.stat().st_size for p in (tmp_path / "db").glob("*.log")) > 80_000
    db.close()


def test_a_partition_database_faust_dropped_can_be_opened_again(tmp_path: Path) -> None:
    """faust closes a revoked partition's database by dropping it; the table IO must not
    keep it alive (its lock held), or reopening it on a reassignment fails."""
    import gc

    processor = Processor(ProcessorConfig(store="rocksdb://", data_dir=tmp_path))
    io = processor.table_io
    io.set(1, b"v|a", b"1")
    store = processor.table.data
    store._dbs.pop(1)  # type: ignore[attr-defined]  # what faust's revocation does
    gc.collect()
    assert io.get(1, b"v|a") == b"1"  # reopened: the same data, no "lock hold" error
