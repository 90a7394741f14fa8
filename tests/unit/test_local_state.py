"""The local RocksDB copy is kept only after a clean shutdown."""

from __future__ import annotations

from pathlib import Path

from processors.local_state import LocalState


def test_unclean_run_deletes_local_tables_clean_run_keeps_them(tmp_path: Path) -> None:
    tables = tmp_path / "v1" / "tables"
    (tables / "state-0.db").mkdir(parents=True)
    state = LocalState(tables, tmp_path)

    state.mark_clean()
    state.check_on_start()  # after a clean shutdown: kept, and the marker is consumed
    assert (tables / "state-0.db").exists()
    assert not (tmp_path / "CLEAN_SHUTDOWN").exists()

    state.check_on_start()  # the process died without marking: rebuilt from the changelog
    assert not tables.exists()


def test_first_start_without_anything_is_fine(tmp_path: Path) -> None:
    LocalState(tmp_path / "v1" / "tables", tmp_path).check_on_start()
    assert not (tmp_path / "v1").exists()
