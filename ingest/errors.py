"""Errors of the collector.

IngestError
├── ConfigError               bad settings; the process refuses to start
└── RequestError              answered to the client as JSON {"error", "message"}
    ├── UnauthorizedError             401
    ├── ForbiddenOriginError          403 (text/plain post from an origin CORS does not allow)
    ├── MalformedBodyError            400
    ├── BodyTooLargeError             413
    ├── TooManyEventsError            413
    ├── UnsupportedMediaTypeError     415
    ├── RateLimitedError              429 + Retry-After (per-org rate limit)
    ├── OverloadedError               429 + Retry-After (in-flight bound)
    └── KafkaUnavailableError         503 + Retry-After (nothing reported accepted)
"""

from __future__ import annotations

from typing import ClassVar


class IngestError(Exception):
    """Root of every error raised by the ``ingest`` package."""


class ConfigError(IngestError):
    """A setting is missing or invalid. The message names the variable and the fix."""


class RequestError(IngestError):
    """A request that is answered with an error status; the message is safe to return."""

    http_status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init__(self, message: str, *, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s


class UnauthorizedError(RequestError):
    http_status = 401
    code = "unauthorized"


class ForbiddenOriginError(RequestError):
    http_status = 403
    code = "forbidden_origin"


class MalformedBodyError(RequestError):
    http_status = 400
    code = "malformed_body"


class BodyTooLargeError(RequestError):
    http_status = 413
    code = "body_too_large"


class TooManyEventsError(RequestError):
    http_status = 413
    code = "too_many_events"


class UnsupportedMediaTypeError(RequestError):
    http_status = 415
    code = "unsupported_media_type"


class RateLimitedError(RequestError):
    http_status = 429
    code = "rate_limited"


class OverloadedError(RequestError):
    http_status = 429
    code = "overloaded"


class KafkaUnavailableError(RequestError):
    http_status = 503
    code = "kafka_unavailable"
