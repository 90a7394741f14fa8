"""Processor settings: one frozen object, read from the environment in one place."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from openqoe_common.env import EnvReader, parse_bool
from processors.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ProcessorConfig:
    """Every setting of the stream processor. See the README's configuration reference."""

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    app_id: str = "openqoe-processor"
    raw_topic: str = "qoe.events.raw"
    views_topic: str = "qoe.views"
    control_topic: str = "qoe.processor.control"
    # Must equal the raw topic's partition count; it is checked at start.
    partitions: int = 12
    replication_factor: int = 1
    store: str = "rocksdb://"
    data_dir: Path = Path(".local/processor")
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    view_timeout_s: float = 3600.0
    closed_view_retention_s: float = 7200.0
    expiry_scan_interval_s: float = 10.0
    heartbeat_interval_s: float = 10.0
    flush_interval_s: float = 10.0
    # How long the group waits for a silent worker before moving its partitions.
    session_timeout_s: float = 30.0
    # Static group membership (e.g. the pod name): a restart within the session timeout
    # keeps the partitions and causes no rebalance.
    group_instance_id: str | None = None
    remote_write_url: str | None = None
    remote_write_username: str | None = None
    remote_write_password: str | None = field(default=None, repr=False)
    remote_write_tenant_per_org: bool = False
    remote_write_timeout_s: float = 10.0
    remote_write_max_pending_requests: int = 360
    loki_url: str | None = None
    loki_username: str | None = None
    loki_password: str | None = field(default=None, repr=False)
    loki_tenant_per_org: bool = False
    loki_max_pending_lines: int = 100_000
    dimension_caps: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.partitions < 1:
            raise ConfigError("PROCESSOR_PARTITIONS must be >= 1")
        if not 0 < self.flush_interval_s <= 60:
            raise ConfigError("PROCESSOR_FLUSH_INTERVAL_S must be in (0, 60]")
        if self.closed_view_retention_s < self.view_timeout_s:
            raise ConfigError(
                "PROCESSOR_CLOSED_VIEW_RETENTION_S must be >= PROCESSOR_VIEW_TIMEOUT_S, so that "
                "late events of a timed-out view are recognised as late."
            )
        if not 6 <= self.session_timeout_s <= 60:
            # The consumer's request timeout must stay above it (Kafka rejects the join).
            raise ConfigError("PROCESSOR_SESSION_TIMEOUT_S must be between 6 and 60 seconds")
        if self.store not in ("rocksdb://", "memory://"):
            raise ConfigError("PROCESSOR_STORE must be rocksdb:// or memory://")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ProcessorConfig:
        d = cls()

        get = EnvReader(environ, ConfigError).get
        boolean = parse_bool
        caps: dict[str, int] = {}
        for item in environ.get("PROCESSOR_DIMENSION_CAPS", "").split(","):
            if item.strip():
                name, _, value = item.partition("=")
                try:
                    caps[name.strip()] = int(value)
                except ValueError:
                    raise ConfigError(
                        f"PROCESSOR_DIMENSION_CAPS: '{item}' is not label=number"
                    ) from None
        return cls(
            kafka_bootstrap_servers=get("KAFKA_BOOTSTRAP_SERVERS", str, d.kafka_bootstrap_servers),
            app_id=get("PROCESSOR_APP_ID", str, d.app_id),
            raw_topic=get("INGEST_RAW_TOPIC", str, d.raw_topic),
            views_topic=get("PROCESSOR_VIEWS_TOPIC", str, d.views_topic),
            control_topic=get("PROCESSOR_CONTROL_TOPIC", str, d.control_topic),
            partitions=get("OPENQOE_RAW_PARTITIONS", int, d.partitions),
            replication_factor=get("OPENQOE_REPLICATION_FACTOR", int, d.replication_factor),
            store=get("PROCESSOR_STORE", str, d.store),
            data_dir=get("PROCESSOR_DATA_DIR", Path, d.data_dir),
            web_host=get("PROCESSOR_WEB_HOST", str, d.web_host),
            web_port=get("PROCESSOR_WEB_PORT", int, d.web_port),
            view_timeout_s=get("PROCESSOR_VIEW_TIMEOUT_S", float, d.view_timeout_s),
            closed_view_retention_s=get(
                "PROCESSOR_CLOSED_VIEW_RETENTION_S", float, d.closed_view_retention_s
            ),
            expiry_scan_interval_s=get(
                "PROCESSOR_EXPIRY_SCAN_INTERVAL_S", float, d.expiry_scan_interval_s
            ),
            heartbeat_interval_s=get(
                "PROCESSOR_HEARTBEAT_INTERVAL_S", float, d.heartbeat_interval_s
            ),
            flush_interval_s=get("PROCESSOR_FLUSH_INTERVAL_S", float, d.flush_interval_s),
            session_timeout_s=get("PROCESSOR_SESSION_TIMEOUT_S", float, d.session_timeout_s),
            group_instance_id=get("PROCESSOR_GROUP_INSTANCE_ID", str, None) or None,
            remote_write_url=get("PROCESSOR_REMOTE_WRITE_URL", str, None) or None,
            remote_write_username=get("PROCESSOR_REMOTE_WRITE_USERNAME", str, None) or None,
            remote_write_password=get("PROCESSOR_REMOTE_WRITE_PASSWORD", str, None) or None,
            remote_write_tenant_per_org=get(
                "PROCESSOR_REMOTE_WRITE_TENANT_PER_ORG", boolean, d.remote_write_tenant_per_org
            ),
            remote_write_timeout_s=get(
                "PROCESSOR_REMOTE_WRITE_TIMEOUT_S", float, d.remote_write_timeout_s
            ),
            remote_write_max_pending_requests=get(
                "PROCESSOR_REMOTE_WRITE_MAX_PENDING", int, d.remote_write_max_pending_requests
            ),
            loki_url=get("PROCESSOR_LOKI_URL", str, None) or None,
            loki_username=get("PROCESSOR_LOKI_USERNAME", str, None) or None,
            loki_password=get("PROCESSOR_LOKI_PASSWORD", str, None) or None,
            loki_tenant_per_org=get(
                "PROCESSOR_LOKI_TENANT_PER_ORG", boolean, d.loki_tenant_per_org
            ),
            loki_max_pending_lines=get(
                "PROCESSOR_LOKI_MAX_PENDING_LINES", int, d.loki_max_pending_lines
            ),
            dimension_caps=caps,
        )
