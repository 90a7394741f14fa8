"""``python -m ingest`` / ``openqoe-collector``: run the HTTP collector."""

from __future__ import annotations

import logging
import os
import sys

from aiohttp import web
from prometheus_client import disable_created_metrics

from ingest.app import create_app
from ingest.config import IngestConfig
from ingest.errors import ConfigError
from ingest.jsonlog import configure_logging


def main() -> None:
    configure_logging(os.environ.get("LOG_LEVEL", "INFO"))
    try:
        config = IngestConfig.from_env(os.environ)
    except ConfigError as exc:
        logging.getLogger("ingest").error("invalid configuration: %s", exc)
        sys.exit(2)
    disable_created_metrics()  # type: ignore[no-untyped-call]
    web.run_app(
        create_app(config),
        host=config.host,
        port=config.port,
        shutdown_timeout=config.shutdown_timeout_s,
        access_log=None,
        print=None,
        handle_signals=True,
    )


if __name__ == "__main__":
    main()
