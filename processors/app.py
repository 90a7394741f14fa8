"""The Faust application, wired: app, table, topics, the batch drain, timers, web pages.

faust-streaming is the framework: its App, worker lifecycle, consumer group and rebalance
callbacks, the table with its changelog topic and RocksDB stores (recovery included),
timers and web server. Messages reach the view logic in batches (processors.drain) rather
than through a per-message agent; docs/benchmarks.md has the measurements behind that.

Each part has its module: processors.drain (the hot loop), processors.batch (a batch in,
the writes it causes), processors.export (snapshot and push), processors.expiry (close and
purge requests), processors.partition_index (what is kept in memory per partition).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from processors.batch import BatchStep
from processors.changelog_flush import BoundedFlush
from processors.config import ProcessorConfig
from processors.dims import DimensionCaps
from processors.drain import BatchDrain
from processors.expiry import Expiry
from processors.export import Exporter, LogBuffer
from processors.gaps import MessageReader, Offsets
from processors.metrics import ProcessorMetrics
from processors.partition_index import PartitionIndex
from processors.pusher import Pusher, PushMetrics
from processors.sinks import LOKI_HEADERS, REMOTE_WRITE_HEADERS, http_sender
from processors.step import CONTROL, RAW
from processors.table_io import FaustTableIO, TableIO
from schemas import (
    player_event_known_view_reader,
    player_event_reader,
    player_event_sections,
    view_summary_codec,
)

logger = logging.getLogger(__name__)

# Each partition has a RocksDB database of its own, and faust's defaults (per database: up
# to 3 memtables of 64 MiB and a 2 GiB block cache) let a worker with a dozen partitions
# under heartbeat traffic grow by hundreds of MB in minutes. Reads are rare (open views are
# served from memory, processors.partition_index), so small ones do: at most 2 x 8 MiB of
# memtables and a 16 MiB block cache per partition.
ROCKSDB_OPTIONS: dict[str, int] = {
    "write_buffer_size": 8 * 2**20,
    "max_write_buffer_number": 2,
    "block_cache_size": 16 * 2**20,
}

# The table's name; its changelog topic is "<app_id>-views-changelog". Values are
# processors.state_codec records (an earlier JSON layout lived in the "state" table).
TABLE = "views"
# Messages handed to the batch step per poll, at most (aiokafka max_poll_records).
MAX_POLL_RECORDS = 2000


class Processor:
    """Owns the Faust app and everything around it for one worker process."""

    def __init__(
        self,
        config: ProcessorConfig,
        *,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.clock = clock
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = ProcessorMetrics(self.registry)
        caps = dict(config.dimension_caps)
        if config.remote_write_tenant_per_org or config.loki_tenant_per_org:
            caps.setdefault("org", 1_000_000)  # tenants must keep their own org label
        self.caps = DimensionCaps(caps)
        self.summary_codec = view_summary_codec()
        self.timeout_ms = config.view_timeout_s * 1000
        self.retention_ms = config.closed_view_retention_s * 1000

        servers = ";".join(
            f"kafka://{s.strip()}" for s in config.kafka_bootstrap_servers.split(",")
        )
        self.app = faust.App(
            config.app_id,
            broker=servers,
            store=config.store,
            datadir=str(config.data_dir),
            topic_partitions=config.partitions,
            topic_replication_factor=config.replication_factor,
            processing_guarantee="at_least_once",
            consumer_auto_offset_reset="earliest",
            # Each commit first flushes the producer (processors.changelog_flush); replays
            # after a crash are counted once either way (processors.batch), a longer
            # interval only means more of them.
            broker_commit_interval=5.0,
            broker_session_timeout=config.session_timeout_s,
            broker_max_poll_records=MAX_POLL_RECORDS,
            consumer_group_instance_id=config.group_instance_id,
            broker_heartbeat_interval=config.session_timeout_s / 10,
            producer_acks=-1,
            producer_linger=0.005,
            # A full produce batch makes aiokafka hold every changelog write queued behind it
            # for a round trip; 1 MB (the broker's default max.message.bytes) rarely fills.
            producer_max_batch_size=1024 * 1024,
            stream_wait_empty=True,
            table_standby_replicas=0,
            web_host=config.web_host,
            web_port=config.web_port,
            web_tables_enabled=False,
            web_graph_enabled=False,
            web_stats_enabled=False,
            web_metrics_enabled=False,
            web_router_enabled=False,
            # Faust would otherwise read ~80 variables (WEB_PORT, BROKER_URL, ...) from the
            # environment and override these settings; ProcessorConfig is the only source.
            env={},
        )
        # One table for views and aggregates: the writes of a partition share one changelog
        # partition and stay in order (processors.batch).
        self.table = self.app.Table(
            TABLE,
            default=None,
            partitions=config.partitions,
            key_type=bytes,  # bytes: the "raw" codec both ways (processors.state_codec)
            value_type=bytes,
            options=dict(ROCKSDB_OPTIONS),  # a copy: faust pops keys off it
        )
        self.table_io: TableIO = FaustTableIO(self.table, self.app.producer)
        # Before the producer starts: its buffer's sender task picks up the wrapper.
        BoundedFlush(self.app.producer.buffer).install()
        self.source = self.app.topic(
            config.raw_topic,
            config.control_topic,
            key_serializer="raw",
            value_serializer="raw",
            partitions=config.partitions,
        )
        self.control = self.app.topic(
            config.control_topic, key_serializer="raw", value_serializer="raw"
        )
        self.views = self.app.topic(
            config.views_topic, key_serializer="raw", value_serializer="raw"
        )

        push_metrics = PushMetrics(self.registry)
        remote_write: Pusher | None = None
        if config.remote_write_url:
            auth = _auth(config.remote_write_username, config.remote_write_password)
            remote_write = Pusher(
                "remote_write",
                http_sender(
                    config.remote_write_url,
                    REMOTE_WRITE_HEADERS,
                    auth,
                    config.remote_write_timeout_s,
                ),
                config.remote_write_max_pending_requests,
                push_metrics,
            )
        loki: Pusher | None = None
        if config.loki_url:
            auth = _auth(config.loki_username, config.loki_password)
            loki = Pusher(
                "loki",
                http_sender(config.loki_url, LOKI_HEADERS, auth, config.remote_write_timeout_s),
                max(1, config.loki_max_pending_lines // 100),
                push_metrics,
            )
        self.logs = LogBuffer(config.loki_max_pending_lines, self.metrics)
        self.exporter = Exporter(
            remote_write=remote_write,
            loki=loki,
            logs=self.logs,
            metrics=self.metrics,
            durable=self._durable,
            clock=clock,
            concurrency_window_ms=2 * config.heartbeat_interval_s * 1000,
            remote_write_tenant="org" if config.remote_write_tenant_per_org else None,
            loki_tenant="org" if config.loki_tenant_per_org else None,
        )
        self.expiry = Expiry(self._send_control, clock, self.metrics)
        self.indexes: dict[int, PartitionIndex] = {}
        self.step = BatchStep(
            self.table_io,
            self.index,
            self._drop_index,
            player_event_reader().decode,
            self.caps.labels,
            clock,
            self.timeout_ms,
            self.retention_ms,
            decode_known=player_event_known_view_reader().decode,
            sections=player_event_sections(),
        )
        self.reader = MessageReader(config.kafka_bootstrap_servers, config.app_id)
        self.drain = BatchDrain(
            self.app,
            {config.raw_topic: RAW, config.control_topic: CONTROL},
            self.process,
            self.table_io.send,
            Offsets(self.reader.committed, self.reader.earliest),
            self.reader,
            lambda tag, n: self.metrics.gap_messages.labels(tag).inc(n),
        )
        self._flush_lock = asyncio.Lock()

        # Never given a message (processors.drain delivers them): it subscribes the source
        # topics, so faust's assignor makes them the table's co-partitioned sources.
        self.app.agent(self.source, name="views")(_unused_agent)
        self.app.timer(config.expiry_scan_interval_s)(self._expiry_scan)
        self.app.timer(config.flush_interval_s)(self.flush)
        self.app.page("/metrics")(_metrics_view(self))
        self.app.page("/health")(_health_view(self))
        self.app.on_partitions_revoked.connect(self._on_revoked)
        self.app.on_before_shutdown.connect(self._on_shutdown)
        self.drain.install()

    # --- the batch step ---------------------------------------------------------------

    def index(self, partition: int) -> PartitionIndex:
        """The partition's in-memory index, rebuilt from the table on first use."""
        index = self.indexes.get(partition)
        if index is None:
            started = time.monotonic()
            index = PartitionIndex.rebuild(
                partition, self.table_io, self.timeout_ms, self.retention_ms
            )
            self.indexes[partition] = index
            logger.info(
                "partition %s: %s views, %s aggregates indexed in %.3fs",
                partition,
                index.views_kept,
                len(index.aggregates),
                time.monotonic() - started,
            )
        return index

    def _drop_index(self, partition: int) -> None:
        self.indexes.pop(partition, None)

    async def indexes_of(self, partitions: set[int]) -> list[PartitionIndex]:
        """The indexes of ``partitions``, rebuilding missing ones one partition at a time
        (a large partition takes a while to read; the web server and timers go on)."""
        out = []
        for partition in sorted(partitions):
            if partition not in self.indexes:
                await asyncio.sleep(0)
            out.append(self.index(partition))
        return out

    def process(self, tag: str, partition: int, messages: Sequence[tuple[int, bytes]]) -> None:
        """One run of consecutive messages of one topic partition (processors.drain)."""
        out = self.step.run(tag, partition, messages)
        self.metrics.batch_size.observe(len(messages))
        for kind, n in out.kinds.items():
            self.metrics.messages.labels(tag, kind).inc(n)
        for summary_partition, summary in out.summaries:
            self.views.send_soon(
                key=summary["view_id"].encode(),
                value=self.summary_codec.encode(summary),
                partition=summary_partition,
            )
        if self.exporter.loki is not None:
            for labels, kind, time_ms, body, ids in out.log_lines:
                self.logs.add(labels, kind, time_ms, body, ids)

    def _send_control(self, key: bytes, value: bytes, partition: int) -> None:
        self.control.send_soon(key=key, value=value, partition=partition)

    # --- timers -----------------------------------------------------------------------

    def _active_partitions(self) -> set[int]:
        return {
            tp.partition
            for tp in self.app.assignor.assigned_actives()
            if tp.topic == self.config.raw_topic
        }

    def _busy(self) -> bool:
        return bool(self.app.rebalancing or self.app.in_recovery)

    async def _backlog(self, partition: int) -> int | None:
        """Messages of the raw partition not yet processed, or None while not yet known."""
        tp = faust.types.TP(self.config.raw_topic, partition)
        highwater = self.app.consumer.highwater(tp)
        # What was processed, not what faust fetched: fetched messages can be skipped.
        position = await self.drain.offsets.expected(self.config.raw_topic, partition)
        if highwater is None or highwater < 0 or position is None:
            return None
        return max(0, highwater - position)

    async def _expiry_scan(self) -> None:
        if self._busy():
            return
        active = self._active_partitions()
        tps = {
            faust.types.TP(topic, p)
            for p in active
            for topic in (self.config.raw_topic, self.config.control_topic)
        }
        await self.drain.watch_stalls(tps)
        # A lagging partition's views may have events waiting: not idle, however old.
        caught_up = {p for p in active if not await self._backlog(p)}
        if self._busy():
            return
        async with self.drain.lock:
            owned = await self.indexes_of(active)
            self.expiry.scan([i for i in owned if i.partition in caught_up])
        self.metrics.views_kept.set(sum(i.views_kept for i in owned))
        self.metrics.views_open.set(sum(len(i.open_views) for i in owned))

    async def flush(self) -> None:
        async with self._flush_lock:
            if self._busy():
                return
            active = self._active_partitions()
            async with self.drain.lock:
                indexes = await self.indexes_of(active)
            await self.exporter.flush(indexes)
            for partition in active:
                backlog = await self._backlog(partition)
                if backlog is not None:
                    self.metrics.lag.labels(str(partition)).set(backlog)

    async def _durable(self) -> None:
        # faust's buffer up to this point (processors.changelog_flush), then aiokafka's.
        await self.app.producer.flush()

    # --- rebalance and shutdown ------------------------------------------------------------

    async def _on_revoked(
        self, sender: Any, /, *args: Any, signal: Any = None, **kwargs: Any
    ) -> None:
        revoked = args[0] if args else kwargs.get("revoked", ())
        # After an in-progress flush: nothing of a revoked partition is snapshotted after its
        # new owner may have started exporting it.
        async with self._flush_lock, self.drain.lock:
            for tp in revoked:
                self.drain.forget(tp.topic, tp.partition)
                if tp.topic == self.config.raw_topic:
                    self.indexes.pop(tp.partition, None)
                    self.exporter.new_series.forget(tp.partition)
                    with contextlib.suppress(KeyError):
                        self.metrics.lag.remove(str(tp.partition))

    async def _on_shutdown(
        self, sender: Any, /, *args: Any, signal: Any = None, **kwargs: Any
    ) -> None:
        await self.flush()
        for pusher in (self.exporter.remote_write, self.exporter.loki):
            if pusher is not None:
                await asyncio.to_thread(pusher.stop, 10.0)
        await self.reader.stop()


async def _unused_agent(stream: faust.StreamT[bytes]) -> None:
    async for _event in stream.events():  # pragma: no cover - processors.drain has them
        logger.error("a message reached the unused agent; processors.drain should have it")


def _metrics_view(processor: Processor) -> type[faust.web.View]:
    class MetricsView(faust.web.View):
        async def get(self, request: faust.web.Request) -> faust.web.Response:
            body = generate_latest(processor.registry)
            return self.bytes(body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return MetricsView


def _health_view(processor: Processor) -> type[faust.web.View]:
    class HealthView(faust.web.View):
        async def get(self, request: faust.web.Request) -> faust.web.Response:
            return self.json({"status": "ok", "rebalancing": bool(processor.app.rebalancing)})

    return HealthView


def _auth(username: str | None, password: str | None) -> tuple[str, str] | None:
    return (username, password) if username and password else None
