"""``python -m processors`` / ``openqoe-processor``: run one stream-processor worker."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from faust import Worker
from prometheus_client import disable_created_metrics

from openqoe_common.jsonlog import configure_logging
from processors.app import Processor
from processors.config import ProcessorConfig
from processors.errors import ConfigError
from processors.local_state import LocalState


class _JsonLogWorker(Worker):
    """faust's worker, logging JSON lines like the collector (mode replaces the handlers)."""

    def _setup_logging(self) -> None:
        super()._setup_logging()
        configure_logging(os.environ.get("LOG_LEVEL", "INFO"))


def main() -> None:
    level = os.environ.get("LOG_LEVEL", "INFO")
    try:
        config = ProcessorConfig.from_env(os.environ)
    except ConfigError as exc:
        configure_logging(level)
        logging.getLogger("processors").error("invalid configuration: %s", exc)
        sys.exit(2)
    disable_created_metrics()  # type: ignore[no-untyped-call]
    processor = Processor(config)
    local_state = LocalState(Path(processor.app.conf.tabledir), config.data_dir)
    local_state.check_on_start()
    worker = _JsonLogWorker(processor.app, loglevel=level, quiet=True, redirect_stdouts=False)
    # No terminal spinner: faust installs it by setting the root logger to DEBUG, so every
    # debug call of faust, mode and aiokafka (several per message) would build a LogRecord.
    worker.spinner = None
    try:
        worker.execute_from_commandline()
    except SystemExit as exit_:
        if exit_.code in (0, None):
            local_state.mark_clean()
        raise


if __name__ == "__main__":
    main()
