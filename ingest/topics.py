"""``openqoe-topics``: create the project's Kafka topics, or check existing ones.

Topics are created by the project, never auto-created by the broker: partition count
is part of the data contract (views are keyed by ``view_id``, and the processors'
state is co-partitioned with the raw topic), so it must be chosen, not defaulted.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from ingest.errors import ConfigError
from openqoe_common.env import EnvReader

logger = logging.getLogger(__name__)

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    configs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TopicsConfig:
    """Topic layout. Env: KAFKA_BOOTSTRAP_SERVERS and OPENQOE_* (see README)."""

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    replication_factor: int = 1
    min_insync_replicas: int = 1
    raw_topic: str = "qoe.events.raw"
    raw_partitions: int = 12
    raw_retention_ms: int = 7 * DAY_MS
    rejected_topic: str = "qoe.events.rejected"
    rejected_partitions: int = 3
    rejected_retention_ms: int = 14 * DAY_MS
    views_topic: str = "qoe.views"
    views_retention_ms: int = 30 * DAY_MS
    control_topic: str = "qoe.processor.control"

    def __post_init__(self) -> None:
        if self.min_insync_replicas > self.replication_factor:
            raise ConfigError(
                "OPENQOE_MIN_INSYNC_REPLICAS must not exceed OPENQOE_REPLICATION_FACTOR, "
                "or every acks=all write would fail."
            )
        if self.raw_partitions < 1 or self.rejected_partitions < 1:
            raise ConfigError("partition counts must be >= 1")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> TopicsConfig:
        d = cls()

        env = EnvReader(environ, ConfigError)

        def integer(name: str, default: int) -> int:
            return env.get(name, int, default)

        return cls(
            kafka_bootstrap_servers=environ.get(
                "KAFKA_BOOTSTRAP_SERVERS", d.kafka_bootstrap_servers
            ),
            replication_factor=integer("OPENQOE_REPLICATION_FACTOR", d.replication_factor),
            min_insync_replicas=integer("OPENQOE_MIN_INSYNC_REPLICAS", d.min_insync_replicas),
            raw_topic=environ.get("INGEST_RAW_TOPIC", d.raw_topic),
            raw_partitions=integer("OPENQOE_RAW_PARTITIONS", d.raw_partitions),
            raw_retention_ms=integer("OPENQOE_RAW_RETENTION_MS", d.raw_retention_ms),
            rejected_topic=environ.get("INGEST_REJECTED_TOPIC", d.rejected_topic),
            rejected_partitions=integer("OPENQOE_REJECTED_PARTITIONS", d.rejected_partitions),
            rejected_retention_ms=integer("OPENQOE_REJECTED_RETENTION_MS", d.rejected_retention_ms),
            views_topic=environ.get("PROCESSOR_VIEWS_TOPIC", d.views_topic),
            views_retention_ms=integer("OPENQOE_VIEWS_RETENTION_MS", d.views_retention_ms),
            control_topic=environ.get("PROCESSOR_CONTROL_TOPIC", d.control_topic),
        )

    def specs(self) -> list[TopicSpec]:
        common = {
            "min.insync.replicas": str(self.min_insync_replicas),
            # Keep whatever the producer compressed with; no recompression on the broker.
            "compression.type": "producer",
            "cleanup.policy": "delete",
        }
        return [
            TopicSpec(
                self.raw_topic,
                self.raw_partitions,
                {**common, "retention.ms": str(self.raw_retention_ms)},
            ),
            TopicSpec(
                self.rejected_topic,
                self.rejected_partitions,
                {**common, "retention.ms": str(self.rejected_retention_ms)},
            ),
            # View summaries are keyed by view_id like the raw topic they come from.
            TopicSpec(
                self.views_topic,
                self.raw_partitions,
                {**common, "retention.ms": str(self.views_retention_ms)},
            ),
            # The processor's view-expiry requests; co-partitioned with the raw topic.
            TopicSpec(
                self.control_topic,
                self.raw_partitions,
                {**common, "retention.ms": str(DAY_MS)},
            ),
        ]


class TopicMismatchError(ConfigError):
    """An existing topic differs from the configured layout in a way we cannot fix."""


async def ensure_topics(config: TopicsConfig, *, create: bool = True) -> list[str]:
    """Create missing topics (unless ``create`` is false) and check existing ones.

    Returns human-readable lines describing what was done. Raises ``TopicMismatchError``
    when a topic is missing in check mode or has the wrong partition count.
    """
    admin = AIOKafkaAdminClient(
        bootstrap_servers=config.kafka_bootstrap_servers, client_id="openqoe-topics"
    )
    await admin.start()
    try:
        return await _ensure(admin, config, create)
    finally:
        await admin.close()


async def _ensure(admin: AIOKafkaAdminClient, config: TopicsConfig, create: bool) -> list[str]:
    report: list[str] = []
    problems: list[str] = []
    specs = config.specs()
    existing = set(await admin.list_topics())
    missing = [s for s in specs if s.name not in existing]
    if missing and not create:
        problems += [f"topic {s.name} does not exist" for s in missing]
    elif missing:
        await admin.create_topics(
            [
                NewTopic(
                    s.name,
                    s.partitions,
                    config.replication_factor,
                    topic_configs=dict(s.configs),
                )
                for s in missing
            ]
        )
        report += [f"created {s.name} ({s.partitions} partitions)" for s in missing]

    present = [s for s in specs if s.name in existing]
    if present:
        described = {t["topic"]: t for t in await admin.describe_topics([s.name for s in present])}
        configs = await _topic_configs(admin, [s.name for s in present])
        for spec in present:
            partitions = len(described[spec.name]["partitions"])
            if partitions != spec.partitions:
                problems.append(
                    f"topic {spec.name} has {partitions} partitions but {spec.partitions} are "
                    "configured. Keys (view_id) map to partitions by count, so it cannot "
                    "simply be changed. Operator action: set the configured count to "
                    f"{partitions}, or create a new topic and migrate."
                )
                continue
            drift = {
                k: (configs.get(spec.name, {}).get(k), v)
                for k, v in spec.configs.items()
                if configs.get(spec.name, {}).get(k) != v
            }
            if drift:
                report.append(
                    f"{spec.name}: ok ({partitions} partitions); config differs: "
                    + ", ".join(
                        f"{k}={have} (configured {want})" for k, (have, want) in drift.items()
                    )
                )
            else:
                report.append(f"{spec.name}: ok ({partitions} partitions)")
    if problems:
        raise TopicMismatchError("; ".join(problems))
    return report


async def _topic_configs(
    admin: AIOKafkaAdminClient, names: Sequence[str]
) -> dict[str, dict[str, str]]:
    responses = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
    )
    out: dict[str, dict[str, str]] = {}
    for response in responses:
        for resource in response.resources:
            # (error_code, error_message, resource_type, resource_name, config_entries)
            name, entries = resource[3], resource[4]
            out[name] = {entry[0]: entry[1] for entry in entries}
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="openqoe-topics", description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="only check; do not create missing topics"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        config = TopicsConfig.from_env(os.environ)
        for line in asyncio.run(ensure_topics(config, create=not args.check)):
            logger.info("%s", line)
    except ConfigError as exc:
        logger.error("error: %s", exc)
        sys.exit(1)
    except KafkaError as exc:
        logger.error("error: Kafka at %s: %r", os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), exc)
        sys.exit(1)


if __name__ == "__main__":
    main()
