"""``python -m ingest`` / ``openqoe-collector``: run the HTTP collector."""

from __future__ import annotations

import logging
import os
import sys

from ingest.config import IngestConfig
from ingest.errors import ConfigError
from ingest.processes import Supervisor, serve
from openqoe_common.jsonlog import configure_logging


def main() -> None:
    log_level = os.environ.get("LOG_LEVEL", "INFO")
    configure_logging(log_level)
    try:
        config = IngestConfig.from_env(os.environ)
    except ConfigError as exc:
        logging.getLogger("ingest").error("invalid configuration: %s", exc)
        sys.exit(2)
    if config.processes == 1:
        serve(config)
    else:
        sys.exit(Supervisor(config, log_level).run())


if __name__ == "__main__":
    main()
