"""Keep the local RocksDB copy of the table honest after a crash.

RocksDB writes land on disk at once, while the changelog (the source of truth) only gets
them when Faust's producer flushes. After ``kill -9`` the local copy can therefore hold
writes the changelog never got, for some keys and not others; recovery then reads the
changelog tail over it and mixes versions (a view from after the crash point with an
aggregate from before it), which would lose counts. So the local copy is trusted only
after a clean shutdown, recorded by a marker file; otherwise it is deleted and the state
is rebuilt from the changelog.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

logger = logging.getLogger(__name__)

MARKER = "CLEAN_SHUTDOWN"


class LocalState:
    def __init__(self, table_dir: Path, data_dir: Path) -> None:
        self.table_dir = table_dir
        self.marker = data_dir / MARKER

    def check_on_start(self) -> None:
        """Delete the local tables unless the last run ended cleanly; then mark "running"."""
        if self.table_dir.exists() and not self.marker.exists():
            logger.warning(
                "last run did not shut down cleanly: rebuilding state from the changelog "
                "(deleting %s)",
                self.table_dir,
            )
            shutil.rmtree(self.table_dir)
        self.marker.unlink(missing_ok=True)

    def mark_clean(self) -> None:
        """Record that every local write is also in the changelog."""
        self.marker.parent.mkdir(parents=True, exist_ok=True)
        self.marker.touch()
