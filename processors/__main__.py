"""``python -m processors`` / ``openqoe-processor``: run one stream-processor worker."""

from __future__ import annotations

import logging
import os
import sys

from faust import Worker
from prometheus_client import disable_created_metrics

from ingest.jsonlog import configure_logging
from processors.app import Processor
from processors.config import ProcessorConfig
from processors.errors import ConfigError


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
    worker = Worker(processor.app, loglevel=level, quiet=True)
    # No terminal spinner: faust installs it by setting the root logger to DEBUG, so every
    # debug call of faust, mode and aiokafka (several per message) would build a LogRecord.
    worker.spinner = None
    configure_logging(level)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
