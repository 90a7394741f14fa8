"""The OpenQoE HTTP collector: validates player events and makes them durable in Kafka."""

from ingest.app import create_app
from ingest.config import IngestConfig
from ingest.errors import ConfigError, IngestError, RequestError
from ingest.publisher import EventPublisher
from ingest.validation import EVENT_TYPES, FieldError, TimeWindow, validate_event

__all__ = [
    "EVENT_TYPES",
    "ConfigError",
    "EventPublisher",
    "FieldError",
    "IngestConfig",
    "IngestError",
    "RequestError",
    "TimeWindow",
    "create_app",
    "validate_event",
]
