"""The collector's own Prometheus metrics, built on an injected registry."""

from __future__ import annotations

from typing import NamedTuple

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class IngestMetrics(NamedTuple):
    requests: Counter
    request_duration: Histogram
    events_accepted: Counter
    events_rejected: Counter
    produce_duration: Histogram
    in_flight_events: Gauge
    in_flight_requests: Gauge
    kafka_ready: Gauge
    cmcd_records: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> IngestMetrics:
        return cls(
            requests=Counter(
                "openqoe_ingest_http_requests",
                "HTTP requests answered, by handler and status code.",
                ["handler", "code"],
                registry=registry,
            ),
            request_duration=Histogram(
                "openqoe_ingest_http_request_duration_seconds",
                "Time from request start to response, by handler.",
                ["handler"],
                buckets=_LATENCY_BUCKETS,
                registry=registry,
            ),
            events_accepted=Counter(
                "openqoe_ingest_events_accepted",
                "Events acknowledged by Kafka on the raw topic, by canonical event type.",
                ["event_type"],
                registry=registry,
            ),
            events_rejected=Counter(
                "openqoe_ingest_events_rejected",
                "Events not accepted, by reason (validation code, or the request-level refusal).",
                ["reason"],
                registry=registry,
            ),
            produce_duration=Histogram(
                "openqoe_ingest_produce_duration_seconds",
                "Time from handing a request's events to the producer until Kafka acked all.",
                buckets=_LATENCY_BUCKETS,
                registry=registry,
            ),
            in_flight_events=Gauge(
                "openqoe_ingest_in_flight_events",
                "Events parsed but not yet acknowledged by Kafka.",
                registry=registry,
                multiprocess_mode="livesum",
            ),
            in_flight_requests=Gauge(
                "openqoe_ingest_in_flight_requests",
                "Requests being handled.",
                registry=registry,
                multiprocess_mode="livesum",
            ),
            kafka_ready=Gauge(
                "openqoe_ingest_kafka_ready",
                "1 when the producer is connected to Kafka, else 0 (with several processes: "
                "the lowest of them).",
                registry=registry,
                multiprocess_mode="livemin",
            ),
            cmcd_records=Counter(
                "openqoe_ingest_cmcd_records",
                "CMCD records received on /v1/cmcd: used (mapped to events, which are then "
                "accepted or rejected as any other) or ignored (events and states with no "
                "QoE meaning here, e.g. rr, m, ab).",
                ["outcome"],
                registry=registry,
            ),
        )
