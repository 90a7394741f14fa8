"""Collector settings: one frozen object, read from the environment in one place."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from ingest.errors import ConfigError
from openqoe_common.env import EnvReader, parse_bool

T = TypeVar("T")


class Secret(str):
    """A string that never shows its value in repr, logs or error messages."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Secret('**********')"


@dataclass(frozen=True, slots=True)
class IngestConfig:
    """Every setting of the collector. See the README's configuration reference."""

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    raw_topic: str = "qoe.events.raw"
    rejected_topic: str = "qoe.events.rejected"
    host: str = "127.0.0.1"
    port: int = 8080
    # ingest key -> org_id. Several keys may map to one org (rotation).
    api_keys: Mapping[Secret, str] = field(default_factory=dict)
    auth_disabled: bool = False
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = 1 << 20
    max_decompressed_bytes: int = 8 << 20
    max_events_per_batch: int = 1000
    max_in_flight_events: int = 50_000
    org_rate_limit_eps: float = 20_000.0
    org_burst_events: int = 40_000
    max_event_age_s: int = 24 * 3600
    max_event_future_s: int = 300
    produce_timeout_s: float = 10.0
    retry_after_s: int = 5
    linger_ms: int = 5
    compression_type: str | None = "lz4"
    shutdown_timeout_s: float = 15.0
    # Collector processes sharing host:port (ingest.processes); limits apply per process.
    processes: int = 1

    def __post_init__(self) -> None:
        if not self.auth_disabled and not self.api_keys:
            raise ConfigError(
                "No ingest keys are configured. Operator action: set INGEST_API_KEYS "
                "(org_id:key,...) or INGEST_API_KEYS_FILE, or set INGEST_AUTH_DISABLED=true "
                "for local use only."
            )
        for name in ("max_body_bytes", "max_decompressed_bytes", "max_events_per_batch"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive")
        if self.max_decompressed_bytes < self.max_body_bytes:
            raise ConfigError(
                "INGEST_MAX_DECOMPRESSED_BYTES must be >= INGEST_MAX_BODY_BYTES: a gzip body "
                "never decompresses to less than the limit an uncompressed one has."
            )
        if self.max_in_flight_events < self.max_events_per_batch:
            raise ConfigError(
                "INGEST_MAX_IN_FLIGHT_EVENTS must be >= INGEST_MAX_EVENTS_PER_BATCH, "
                "or a full batch could never be accepted."
            )
        if self.org_burst_events < self.max_events_per_batch and self.org_rate_limit_eps > 0:
            raise ConfigError(
                "INGEST_ORG_BURST_EVENTS must be >= INGEST_MAX_EVENTS_PER_BATCH, "
                "or a full batch could never pass the rate limit."
            )
        if not 1 <= self.processes <= 256:
            raise ConfigError("INGEST_PROCESSES must be between 1 and 256")
        if "*" in self.cors_origins and len(self.cors_origins) > 1:
            raise ConfigError("INGEST_CORS_ORIGINS: use either '*' or a list of origins, not both")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> IngestConfig:
        """Build the config from ``INGEST_*`` variables (and ``KAFKA_BOOTSTRAP_SERVERS``)."""
        env = EnvReader(environ, ConfigError)
        keys = _parse_keys(environ.get("INGEST_API_KEYS", ""), "INGEST_API_KEYS")
        keys_file = environ.get("INGEST_API_KEYS_FILE")
        if keys_file:
            try:
                text = Path(keys_file).read_text("utf-8")
            except OSError as exc:
                raise ConfigError(f"INGEST_API_KEYS_FILE: cannot read {keys_file}: {exc}") from exc
            keys.update(_parse_keys(text, "INGEST_API_KEYS_FILE"))
        defaults = cls(auth_disabled=True)
        compression = env.get("INGEST_COMPRESSION_TYPE", str, defaults.compression_type or "none")
        return cls(
            kafka_bootstrap_servers=env.get(
                "KAFKA_BOOTSTRAP_SERVERS", str, defaults.kafka_bootstrap_servers
            ),
            raw_topic=env.get("INGEST_RAW_TOPIC", str, defaults.raw_topic),
            rejected_topic=env.get("INGEST_REJECTED_TOPIC", str, defaults.rejected_topic),
            host=env.get("INGEST_HOST", str, defaults.host),
            port=env.get("INGEST_PORT", int, defaults.port),
            api_keys=keys,
            auth_disabled=env.get("INGEST_AUTH_DISABLED", parse_bool, False),
            cors_origins=tuple(
                o.strip() for o in environ.get("INGEST_CORS_ORIGINS", "").split(",") if o.strip()
            ),
            max_body_bytes=env.get("INGEST_MAX_BODY_BYTES", int, defaults.max_body_bytes),
            max_decompressed_bytes=env.get(
                "INGEST_MAX_DECOMPRESSED_BYTES", int, defaults.max_decompressed_bytes
            ),
            max_events_per_batch=env.get(
                "INGEST_MAX_EVENTS_PER_BATCH", int, defaults.max_events_per_batch
            ),
            max_in_flight_events=env.get(
                "INGEST_MAX_IN_FLIGHT_EVENTS", int, defaults.max_in_flight_events
            ),
            org_rate_limit_eps=env.get(
                "INGEST_ORG_RATE_LIMIT_EPS", float, defaults.org_rate_limit_eps
            ),
            org_burst_events=env.get("INGEST_ORG_BURST_EVENTS", int, defaults.org_burst_events),
            max_event_age_s=env.get("INGEST_MAX_EVENT_AGE_S", int, defaults.max_event_age_s),
            max_event_future_s=env.get(
                "INGEST_MAX_EVENT_FUTURE_S", int, defaults.max_event_future_s
            ),
            produce_timeout_s=env.get(
                "INGEST_PRODUCE_TIMEOUT_S", float, defaults.produce_timeout_s
            ),
            retry_after_s=env.get("INGEST_RETRY_AFTER_S", int, defaults.retry_after_s),
            linger_ms=env.get("INGEST_LINGER_MS", int, defaults.linger_ms),
            compression_type=None if compression == "none" else compression,
            shutdown_timeout_s=env.get(
                "INGEST_SHUTDOWN_TIMEOUT_S", float, defaults.shutdown_timeout_s
            ),
            processes=env.get("INGEST_PROCESSES", int, defaults.processes),
        )


def _parse_keys(text: str, source: str) -> dict[Secret, str]:
    """Parse ``org_id:key`` pairs separated by commas or newlines."""
    keys: dict[Secret, str] = {}
    for number, item in enumerate(text.replace("\n", ",").split(","), start=1):
        item = item.strip()
        if not item or item.startswith("#"):
            continue
        org, sep, key = item.partition(":")
        if not sep or not org.strip() or not key.strip():
            # Never echo the item: it may contain a key.
            raise ConfigError(f"{source}: entry {number} is not of the form org_id:key")
        keys[Secret(key.strip())] = org.strip()
    return keys
