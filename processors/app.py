"""The Faust application: one agent, one state table, expiry and export timers.

The agent is thin: decode, look up, call ``processors.step``, write, emit. Everything
that decides anything is a pure function in ``step``/``view``/``aggregates``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import faust
from faust.types.tuples import ack_lock
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from processors.aggregates import aggregate_key, apply_once, new_aggregate
from processors.changelog_flush import BoundedFlush
from processors.config import ProcessorConfig
from processors.dims import DimensionCaps
from processors.gaps import MessageReader, Offsets
from processors.metrics import ProcessorMetrics
from processors.pusher import Pusher, PushMetrics
from processors.series import NewSeries, build_samples
from processors.sinks import (
    LOKI_HEADERS,
    REMOTE_WRITE_HEADERS,
    LogLine,
    http_sender,
    loki_requests,
    remote_write_requests,
)
from processors.step import CONTROL, RAW, Step, on_close, on_event, on_purge
from processors.view import State
from schemas import AvroCodecError, player_event_reader, view_summary_codec

logger = logging.getLogger(__name__)

VIEW_PREFIX = "v|"
AGG_PREFIX = "a|"
RESYNC = "resync"  # control op: process what faust fetched but did not deliver
# A raw partition that faust fetched past while the agent did not move for this long is
# stalled (see _watch_stalls); well above the time one message can take.
STALL_AFTER_S = 5.0
GAP_READ_CHUNK = 2000  # messages read from Kafka at a time when filling a hole


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
        self.event_codec = player_event_reader()
        self.summary_codec = view_summary_codec()
        self.reader = MessageReader(config.kafka_bootstrap_servers, config.app_id)
        self.offsets = Offsets(self.reader.committed, self.reader.earliest)
        # raw partition -> (next offset to handle, when it was first seen unchanged)
        self._progress: dict[int, tuple[int, float]] = {}
        self._last_handled = 0.0
        self._flush_lock = asyncio.Lock()
        self.new_series = NewSeries()
        self._log_lines: list[LogLine] = []

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
            # Each commit first flushes the producer; under load that flush waits on every
            # changelog send in turn, so a commit every second ran back to back and took a
            # third of the worker's CPU. Replays after a crash are counted once either way
            # (processors.step); a longer interval only means more of them.
            broker_commit_interval=5.0,
            broker_session_timeout=config.session_timeout_s,
            consumer_group_instance_id=config.group_instance_id,
            broker_heartbeat_interval=config.session_timeout_s / 10,
            producer_acks=-1,
            producer_linger=0.005,
            # Changelog writes (~2 kB per view write) go through faust's buffer one at a time;
            # when a partition's batch is full, aiokafka makes that send (and so every write
            # queued behind it) wait for a produce round trip. faust's default, 16 kB, fills
            # after ~8 view writes; 1 MB (the broker's default max.message.bytes) does not.
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
        # One table for views and aggregates: their changelog writes for one partition then
        # share one changelog partition and stay in order (see processors.step).
        self.state = self.app.Table(
            "state",
            default=None,
            partitions=config.partitions,
            key_type=str,
        )
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
        self.remote_write: Pusher | None = None
        if config.remote_write_url:
            auth = _auth(config.remote_write_username, config.remote_write_password)
            self.remote_write = Pusher(
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
        self.loki: Pusher | None = None
        if config.loki_url:
            auth = _auth(config.loki_username, config.loki_password)
            self.loki = Pusher(
                "loki",
                http_sender(config.loki_url, LOKI_HEADERS, auth, config.remote_write_timeout_s),
                max(1, config.loki_max_pending_lines // 100),
                push_metrics,
            )

        self.app.agent(self.source, name="views")(self._agent)
        self.app.timer(config.expiry_scan_interval_s)(self._expiry_scan)
        self.app.timer(config.flush_interval_s)(self.flush)
        self.app.page("/metrics")(_metrics_view(self))
        self.app.page("/health")(_health_view(self))
        self.app.on_partitions_revoked.connect(self._on_revoked)
        self.app.on_before_shutdown.connect(self._on_shutdown)

    # --- the agent ------------------------------------------------------------------------

    async def _agent(self, stream: faust.StreamT[bytes]) -> None:
        # A coroutine, not an async generator: faust logs (and formats) every value an
        # agent yields, and nothing here is ever a reply to send.
        async for event in stream.events():
            message = event.message
            await self._in_order(message.topic, message.partition, message.offset, event.value)

    async def _in_order(self, topic: str, partition: int, offset: int, value: bytes) -> None:
        """Handle the message after any earlier ones faust did not deliver (processors.gaps)."""
        expected = self.offsets.next_offset(topic, partition)
        if expected is None:
            expected = await self.offsets.expected(topic, partition)
        if expected is not None and offset > expected:
            await self._fill_gap(topic, partition, expected, offset)
        await self.handle(topic, partition, offset, value)
        self.offsets.handled(topic, partition, offset)
        self._last_handled = time.monotonic()

    async def _resync(self, partition: int) -> None:
        """A stall was reported for this raw partition (``_watch_stalls``): process what
        faust fetched but never handed to the agent. Runs in stream context on the
        co-partitioned control partition, so table writes go to the right changelog."""
        topic = self.config.raw_topic
        expected = await self.offsets.expected(topic, partition)
        fetched = await self.app.consumer.position(faust.types.TP(topic, partition))
        if expected is not None and fetched is not None and fetched > expected:
            await self._fill_gap(topic, partition, expected, fetched)

    async def _fill_gap(self, topic: str, partition: int, start: int, end: int) -> None:
        logger.warning(
            "%s partition %s: offsets %s to %s were not delivered by faust; "
            "reading them from Kafka and processing them",
            topic,
            partition,
            start,
            end - 1,
        )
        tag = RAW if topic == self.config.raw_topic else CONTROL
        tp = faust.types.TP(topic, partition)
        # In chunks: a stalled partition can be far behind, and each read has a deadline.
        for chunk_start in range(start, end, GAP_READ_CHUNK):
            chunk_end = min(end, chunk_start + GAP_READ_CHUNK)
            missing = await self.reader.read(topic, partition, chunk_start, chunk_end)
            for offset, value in missing:
                await self.handle(topic, partition, offset, value)
                self.offsets.handled(topic, partition, offset)
            self.metrics.gap_messages.labels(tag).inc(len(missing))
            _mark_acked(self.app.consumer, tp, [o for o, _ in missing])

    def _get(self, key: str) -> Any:
        """The table's value for ``key``, or None.

        Reads the store directly: ``Table.get`` asks the store whether the key exists and
        then reads it again (two RocksDB reads and two key encodings per lookup).
        """
        try:
            return self.state.data[key]
        except KeyError:
            return None

    async def handle(self, topic: str, partition: int, offset: int, value: bytes) -> Step | None:
        """Process one message of the raw or the control topic."""
        now_ms = int(self.clock() * 1000)
        if topic == self.config.raw_topic:
            tag = RAW
            try:
                event = self.event_codec.decode(value)
            except AvroCodecError as exc:
                self.metrics.messages.labels(tag, "undecodable").inc()
                logger.error("undecodable message p%s@%s: %s", partition, offset, exc)
                return None
            view_key = VIEW_PREFIX + event["view_id"]
            view = self._get(view_key)
            step = on_event(
                view,
                self._agg_offset(partition, view, tag, offset),
                event,
                offset,
                partition,
                self.caps.labels,
            )
        else:
            tag = CONTROL
            try:
                request = json.loads(value)
                op = request["op"]
                if op == RESYNC:
                    await self._resync(partition)
                    self.metrics.messages.labels(tag, "resync").inc()
                    return None
                view_key = VIEW_PREFIX + request["view_id"]
            except (ValueError, KeyError, TypeError):
                self.metrics.messages.labels(tag, "undecodable").inc()
                return None
            view = self._get(view_key)
            if op == "close":
                timeout_ms = self.config.view_timeout_s * 1000
                step = on_close(
                    view, self._agg_offset(partition, view, tag, offset), offset, now_ms, timeout_ms
                )
            else:
                step = on_purge(view, now_ms, self.config.closed_view_retention_s * 1000)
        self.metrics.messages.labels(tag, step.kind).inc()
        await self._carry_out(step, view_key, view, partition, tag, offset)
        return step

    def _agg_offset(self, partition: int, view: State | None, tag: str, offset: int) -> int:
        """The offset of ``tag`` last applied to the view's aggregate, -1 if none.

        ``step`` needs it only for a message the view already reflects (a replay after a
        crash); for any other message it is not used, so the aggregate is not read.
        """
        if view is None or view["offsets"].get(tag, -1) < offset:
            return -1
        agg = self._get(aggregate_key(partition, view["labels"]))
        return -1 if agg is None else int(agg["offsets"].get(tag, -1))

    async def _carry_out(
        self, step: Step, view_key: str, view: State | None, partition: int, tag: str, offset: int
    ) -> None:
        # Order matters: the view, then its aggregate (processors.step docstring).
        if step.delete:
            del self.state[view_key]
        elif step.view is not None:
            self.state[view_key] = step.view
        current = step.view or view
        if step.deltas and current is not None:
            key = aggregate_key(partition, current["labels"])
            agg = self._get(key) or new_aggregate(partition, current["labels"])
            if apply_once(agg, tag, offset, step.deltas):
                self.state[key] = agg
        if step.summary is not None:
            summary = step.summary
            await self.views.send(
                key=summary["view_id"].encode(),
                value=self.summary_codec.encode(summary),
                partition=partition,
            )
            self._log(summary["labels"], "view", summary["end_time"], summary, summary)
        if step.fatal_error is not None and current is not None:
            error = step.fatal_error
            line = {
                "event_type": "error",
                "view_id": error["view_id"],
                "error": error.get("data"),
                "labels": current["labels"],
            }
            self._log(current["labels"], "error", int(error["event_time"]), line, current)

    def _log(
        self,
        labels: Mapping[str, str],
        kind: str,
        time_ms: int,
        body: Mapping[str, Any],
        ids: Mapping[str, Any],
    ) -> None:
        if self.loki is None:
            return
        metadata = {
            k: str(ids[k]) for k in ("view_id", "session_id", "viewer_id", "video_id") if ids.get(k)
        }
        self._log_lines.append(
            LogLine(
                {"org": labels["org"], "env": labels["env"], "kind": kind},
                time_ms * 1_000_000,
                json.dumps(body, separators=(",", ":"), default=str),
                metadata,
            )
        )
        overflow = len(self._log_lines) - self.config.loki_max_pending_lines
        if overflow > 0:
            del self._log_lines[:overflow]
            self.metrics.log_lines_dropped.inc(overflow)

    # --- expiry (close-event pattern: timers cannot write tables) --------------------------

    def _active_partitions(self) -> set[int]:
        return {
            tp.partition
            for tp in self.app.assignor.assigned_actives()
            if tp.topic == self.config.raw_topic
        }

    async def _backlog(self, partition: int) -> int | None:
        """Messages of the raw partition not yet processed, or None while not yet known."""
        consumer = self.app.consumer
        tp = faust.types.TP(self.config.raw_topic, partition)
        highwater = consumer.highwater(tp)
        # What the agent handled, not what faust fetched: fetched messages can be skipped.
        position = await self.offsets.expected(self.config.raw_topic, partition)
        if highwater is None or highwater < 0 or position is None:
            return None
        return max(0, highwater - position)

    async def _caught_up(self, partitions: set[int]) -> set[int]:
        """Partitions with no known backlog: a view of a lagging partition may have events
        waiting to be processed, so it is not idle however old its last event is."""
        return {p for p in partitions if not await self._backlog(p)}

    async def _watch_stalls(self) -> None:
        """Ask the agent to resync a raw partition that faust fetched past while the agent
        sat idle for ``STALL_AFTER_S``: faust dropped messages it will not deliver (seen
        after rebalances), and no later message may come to reveal the hole. A busy agent
        is left alone: it gets to every partition, and the next message shows any hole."""
        consumer = self.app.consumer
        now = time.monotonic()
        if now - self._last_handled < STALL_AFTER_S:
            self._progress.clear()
            return
        for partition in self._active_partitions():
            expected = await self.offsets.expected(self.config.raw_topic, partition)
            fetched = await consumer.position(faust.types.TP(self.config.raw_topic, partition))
            if expected is None or fetched is None or fetched <= expected:
                self._progress.pop(partition, None)
                continue
            seen = self._progress.get(partition)
            if seen is None or seen[0] != expected:
                self._progress[partition] = (expected, now)
            elif now - seen[1] >= STALL_AFTER_S:
                logger.warning(
                    "raw partition %s: fetched up to %s but the agent is still at %s after "
                    "%.0fs; asking it to resync",
                    partition,
                    fetched,
                    expected,
                    now - seen[1],
                )
                self._progress[partition] = (expected, now)
                await self.control.send(
                    key=b"resync",
                    value=json.dumps({"op": RESYNC}).encode(),
                    partition=partition,
                )

    async def _expiry_scan(self) -> None:
        if self.app.rebalancing or self.app.in_recovery:
            return
        await self._watch_stalls()
        now_ms = self.clock() * 1000
        active = await self._caught_up(self._active_partitions())
        requests: list[tuple[State, str]] = []
        for key, view in list(self.state.items()):
            if not key.startswith(VIEW_PREFIX) or view["partition"] not in active:
                continue
            idle_ms = now_ms - view["last_received_ms"]
            if not view["closed"] and idle_ms >= self.config.view_timeout_s * 1000:
                requests.append((view, "close"))
            elif view["closed"] and idle_ms >= self.config.closed_view_retention_s * 1000:
                requests.append((view, "purge"))
        for view, op in requests:
            await self.control.send(
                key=view["view_id"].encode(),
                value=json.dumps({"op": op, "view_id": view["view_id"]}).encode(),
                partition=view["partition"],
            )

    # --- export ---------------------------------------------------------------------------

    async def flush(self) -> None:
        """Snapshot, make the snapshot durable, then hand it to the pushers."""
        async with self._flush_lock:
            if self.app.rebalancing or self.app.in_recovery:
                return
            started = time.monotonic()
            now_ms = int(self.clock() * 1000)
            active = self._active_partitions()
            aggregates, open_views = [], []
            for key, value in list(self.state.items()):
                if value is None or value.get("partition") not in active:
                    continue
                if key.startswith(AGG_PREFIX):
                    aggregates.append(value)
                elif not value["closed"]:
                    open_views.append(value)
            concurrency_window = 2 * self.config.heartbeat_interval_s * 1000
            samples = build_samples(
                aggregates, open_views, now_ms, concurrency_window, self.new_series
            )
            lines, self._log_lines = self._log_lines, []
            # Push only what is durable: after a crash the restored state is never behind
            # what was pushed, so no counter goes backwards.
            await self._durable()
            for pusher in (self.remote_write, self.loki):
                if pusher is not None:
                    pusher.start()
            if self.remote_write is not None:
                tenant = "org" if self.config.remote_write_tenant_per_org else None
                for request in remote_write_requests(samples, tenant):
                    self.remote_write.submit(request)
            if self.loki is not None and lines:
                tenant = "org" if self.config.loki_tenant_per_org else None
                for request in loki_requests(lines, tenant):
                    self.loki.submit(request)
            await self._update_lag(active)
            self.metrics.flush_duration.observe(time.monotonic() - started)
            self.metrics.series.set(len(samples))

    async def _durable(self) -> None:
        # faust's buffer up to this point (processors.changelog_flush), then aiokafka's.
        await self.app.producer.flush()

    async def _update_lag(self, active: set[int]) -> None:
        for partition in active:
            backlog = await self._backlog(partition)
            if backlog is not None:
                self.metrics.lag.labels(str(partition)).set(backlog)

    async def _on_revoked(
        self, sender: Any, /, *args: Any, signal: Any = None, **kwargs: Any
    ) -> None:
        revoked = args[0] if args else kwargs.get("revoked", ())
        # Wait for an in-progress flush, so nothing of a revoked partition is snapshotted
        # after its new owner may have started exporting it.
        async with self._flush_lock:
            for tp in revoked:
                self.offsets.forget(tp.topic, tp.partition)
                if tp.topic == self.config.raw_topic:
                    self._progress.pop(tp.partition, None)
                    self.new_series.forget(tp.partition)
                    with contextlib.suppress(KeyError):
                        self.metrics.lag.remove(str(tp.partition))

    async def _on_shutdown(
        self, sender: Any, /, *args: Any, signal: Any = None, **kwargs: Any
    ) -> None:
        await self.flush()
        for pusher in (self.remote_write, self.loki):
            if pusher is not None:
                await asyncio.to_thread(pusher.stop, 10.0)
        await self.reader.stop()

    # --- web ------------------------------------------------------------------------------


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


def _mark_acked(consumer: Any, tp: faust.types.TP, offsets: list[int]) -> None:
    """Record ``offsets`` as acknowledged in faust's consumer, as ``Consumer.ack`` does for
    a delivered message, so its commit can move past messages read by processors.gaps."""
    with ack_lock:
        committed = consumer._committed_offset[tp]
        acked_index = consumer._acked_index[tp]
        for offset in offsets:
            if (committed is None or offset >= committed) and offset not in acked_index:
                acked_index.add(offset)
                consumer._acked[tp].append(offset)


def _auth(username: str | None, password: str | None) -> tuple[str, str] | None:
    return (username, password) if username and password else None
