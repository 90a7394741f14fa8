"""The export: a snapshot of the owned partitions' numbers, made durable, then pushed.

Every ``flush_interval_s`` the aggregates and the open views' live increments of the
owned partitions (held in memory by processors.partition_index, so no table read) become
remote-write samples (processors.series); the Loki lines gathered since the last flush go
with them. Both are handed to the pushers only once every table write before the
snapshot is in Kafka: after a crash the restored state is never behind what was pushed,
so no counter goes backwards.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from processors.metrics import ProcessorMetrics
from processors.partition_index import PartitionIndex
from processors.pusher import Pusher
from processors.series import NewSeries, build_samples
from processors.sinks import LogLine, loki_requests, remote_write_requests

LOG_IDS = ("view_id", "session_id", "viewer_id", "video_id")


class LogBuffer:
    """Loki lines waiting for the next flush, bounded (the oldest are dropped, counted)."""

    def __init__(self, max_lines: int, metrics: ProcessorMetrics) -> None:
        self._max = max_lines
        self._metrics = metrics
        self.lines: list[LogLine] = []

    def add(
        self,
        labels: Mapping[str, str],
        kind: str,
        time_ms: int,
        body: Mapping[str, Any],
        ids: Mapping[str, Any],
    ) -> None:
        metadata = {k: str(ids[k]) for k in LOG_IDS if ids.get(k)}
        self.lines.append(
            LogLine(
                {"org": labels["org"], "env": labels["env"], "kind": kind},
                time_ms * 1_000_000,
                json.dumps(body, separators=(",", ":"), default=str),
                metadata,
            )
        )
        overflow = len(self.lines) - self._max
        if overflow > 0:
            del self.lines[:overflow]
            self._metrics.log_lines_dropped.inc(overflow)

    def take(self) -> list[LogLine]:
        lines, self.lines = self.lines, []
        return lines


class Exporter:
    def __init__(
        self,
        *,
        remote_write: Pusher | None,
        loki: Pusher | None,
        logs: LogBuffer,
        metrics: ProcessorMetrics,
        durable: Callable[[], Awaitable[None]],
        clock: Callable[[], float],
        concurrency_window_ms: float,
        remote_write_tenant: str | None,
        loki_tenant: str | None,
    ) -> None:
        self.remote_write = remote_write
        self.loki = loki
        self.logs = logs
        self.new_series = NewSeries()
        self._metrics = metrics
        self._durable = durable
        self._clock = clock
        self._window_ms = concurrency_window_ms
        self._rw_tenant = remote_write_tenant
        self._loki_tenant = loki_tenant

    async def flush(self, indexes: Iterable[PartitionIndex]) -> None:
        """Snapshot ``indexes`` (the owned partitions), make it durable, push it."""
        started = time.monotonic()
        now_ms = int(self._clock() * 1000)
        owned = list(indexes)
        self.new_series.begin(index.partition for index in owned)
        aggregates = [agg for index in owned for agg in index.aggregates.values()]
        # Iterated, not collected: see PartitionIndex.exported.
        open_views = (view for index in owned for view in index.exported())
        samples = build_samples(aggregates, open_views, now_ms, self._window_ms, self.new_series)
        lines = self.logs.take()
        await self._durable()
        for pusher in (self.remote_write, self.loki):
            if pusher is not None:
                pusher.start()
        if self.remote_write is not None:
            for request in remote_write_requests(samples, self._rw_tenant):
                self.remote_write.submit(request)
        if self.loki is not None and lines:
            for request in loki_requests(lines, self._loki_tenant):
                self.loki.submit(request)
        self._metrics.flush_duration.observe(time.monotonic() - started)
        self._metrics.series.set(len(samples))
