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
