"""Errors of the stream processor.

ProcessorError
├── ConfigError          bad settings; the worker refuses to start
└── PushError            a remote-write or Loki push failed
    ├── RetryableError   5xx, 429, connection errors: retried with backoff
    └── RejectedError    other 4xx: dropped and counted, never retried
"""

from __future__ import annotations


class ProcessorError(Exception):
    """Root of every error raised by the ``processors`` package."""


class ConfigError(ProcessorError):
    """A setting is missing or invalid. The message names the variable and the fix."""


class PushError(ProcessorError):
    """A push to Prometheus/Mimir or Loki failed."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s


class RetryableError(PushError):
    """Worth retrying: 5xx, 429 or a transport failure."""


class RejectedError(PushError):
    """The receiver refused the data for good (4xx other than 429)."""
