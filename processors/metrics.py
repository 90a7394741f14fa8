"""The processor's own health metrics (its /metrics page), on an injected registry.

These describe the worker process, so they start from zero with it; the QoE numbers
are the remote-written series of ``processors.catalog``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ProcessorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.messages = Counter(
            "openqoe_processor_messages",
            "Messages handled by topic (raw, ctl) and outcome (new, applied, closed, late, "
            "duplicate, replayed, ignored, purged, undecodable).",
            ["topic", "outcome"],
            registry=registry,
        )
        self.gap_messages = Counter(
            "openqoe_processor_gap_messages",
            "Messages faust did not deliver to the agent (a hole in a partition's offsets, "
            "seen after rebalances) that the worker read from Kafka itself, by topic.",
            ["topic"],
            registry=registry,
        )
        self.lag = Gauge(
            "openqoe_processor_lag_messages",
            "Messages of the raw topic not yet processed, by partition owned by this worker.",
            ["partition"],
            registry=registry,
        )
        self.flush_duration = Histogram(
            "openqoe_processor_flush_duration_seconds",
            "Time to snapshot, make durable and queue one export.",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=registry,
        )
        self.series = Gauge(
            "openqoe_processor_exported_series",
            "Series in the last export.",
            registry=registry,
        )
        self.log_lines_dropped = Counter(
            "openqoe_processor_log_lines_dropped",
            "Log lines dropped because the Loki buffer was full.",
            registry=registry,
        )
        self.expiry_scan = Histogram(
            "openqoe_processor_expiry_scan_seconds",
            "Time of one expiry scan (it reads only the views that are due).",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=registry,
        )
        self.expiry_requests = Counter(
            "openqoe_processor_expiry_requests",
            "Close and purge requests sent by the expiry scan.",
            registry=registry,
        )
        self.views_kept = Gauge(
            "openqoe_processor_views_kept",
            "Views in the state of the partitions this worker owns (open and recently ended).",
            registry=registry,
        )
        self.views_open = Gauge(
            "openqoe_processor_views_open",
            "Open views in the partitions this worker owns.",
            registry=registry,
        )
        self.batch_size = Histogram(
            "openqoe_processor_batch_messages",
            "Messages per batch given to the batch step (one topic partition at a time).",
            buckets=(1, 5, 10, 25, 50, 100, 200),
            registry=registry,
        )
