"""Building the collector's aiohttp application."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

import aiohttp_cors
from aiohttp import web
from prometheus_client import CollectorRegistry

from ingest import cmcd_handler, handlers
from ingest.auth import KeyRing
from ingest.config import IngestConfig
from ingest.handlers import STATE, IngestState
from ingest.limits import InFlightLimit, OrgRateLimit
from ingest.metrics import IngestMetrics
from ingest.publisher import EventPublisher
from ingest.validation import TimeWindow
from schemas import player_event_codec, rejected_event_codec

# Headers the original SDK sends (X-SDK-Version broke its CORS once) plus auth headers.
CORS_ALLOW_HEADERS = (
    "Content-Type",
    "Content-Encoding",
    "Authorization",
    "X-API-Key",
    "X-SDK-Version",
    # CMCD request-mode transport, which CMCD event targets of some players use.
    "CMCD-Request",
    "CMCD-Object",
    "CMCD-Status",
    "CMCD-Session",
)
CORS_MAX_AGE_S = 86400
KAFKA_READY_CHECK_S = 5.0


def create_app(
    config: IngestConfig,
    *,
    publisher: EventPublisher | None = None,
    registry: CollectorRegistry | None = None,
    exposition: CollectorRegistry | None = None,
    wall_clock: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
) -> web.Application:
    """The collector as an ``aiohttp`` application (not started).

    Metrics are created in ``registry``; ``/metrics`` serves ``exposition`` (by default the
    same registry; in multiprocess mode a registry that sums every process's values).
    """
    registry = registry if registry is not None else CollectorRegistry()
    publisher = publisher or EventPublisher(config)
    app = web.Application(
        middlewares=[handlers.errors_and_metrics],
        # Bodies are read by handlers with their own limit; this is only a backstop.
        client_max_size=config.max_body_bytes + 1024,
        # We inflate gzip ourselves, with a cap (see ingest.body.decompress).
        handler_args={"auto_decompress": False},
    )
    app[STATE] = IngestState(
        config=config,
        publisher=publisher,
        keys=KeyRing(config.api_keys),
        rate_limit=OrgRateLimit(config.org_rate_limit_eps, config.org_burst_events, monotonic),
        in_flight=InFlightLimit(config.max_in_flight_events),
        metrics=IngestMetrics.create(registry),
        registry=exposition if exposition is not None else registry,
        window=TimeWindow(config.max_event_age_s * 1000, config.max_event_future_s * 1000),
        event_codec=player_event_codec(),
        rejected_codec=rejected_event_codec(),
        wall_clock=wall_clock,
    )

    events = app.router.add_post("/v1/events", handlers.post_events, name="events")
    cmcd_routes = [
        app.router.add_route(method, path, cmcd_handler.cmcd, name=f"cmcd{i}")
        for i, path in enumerate(("/v1/cmcd", "/v1/cmcd/{key}"))
        for method in ("POST", "GET")
    ]
    app.router.add_get("/", handlers.index, name="index")
    app.router.add_get("/health", handlers.health, name="health")
    app.router.add_get("/ready", handlers.ready, name="ready")
    app.router.add_get("/metrics", handlers.metrics, name="metrics")
    _setup_cors(app, config, [events, *cmcd_routes])

    async def kafka_producer(app: web.Application) -> AsyncIterator[None]:
        await app[STATE].publisher.start()
        watcher = asyncio.create_task(_watch_kafka(app[STATE]), name="kafka-ready-gauge")
        yield
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await app[STATE].publisher.stop()

    app.cleanup_ctx.append(kafka_producer)
    return app


async def _watch_kafka(state: IngestState) -> None:
    """Keep ``openqoe_ingest_kafka_ready`` current without waiting for ``/ready`` calls:
    with several processes only one of them answers each probe."""
    topics = (state.config.raw_topic, state.config.rejected_topic)
    while True:
        ok = await state.publisher.ready(topics)
        state.metrics.kafka_ready.set(1 if ok else 0)
        await asyncio.sleep(KAFKA_READY_CHECK_S)


def _setup_cors(
    app: web.Application, config: IngestConfig, routes: list[web.AbstractRoute]
) -> None:
    if not config.cors_origins:
        return
    options = aiohttp_cors.ResourceOptions(  # type: ignore[no-untyped-call]
        allow_credentials=False,
        allow_headers=CORS_ALLOW_HEADERS,
        expose_headers=("Retry-After",),
        allow_methods=("POST", "GET"),
        max_age=CORS_MAX_AGE_S,
    )
    cors = aiohttp_cors.setup(app, defaults=dict.fromkeys(config.cors_origins, options))
    for route in routes:
        cors.add(route)

    async def vary_on_origin(request: web.Request, response: web.StreamResponse) -> None:
        # The allowed origin is echoed back, so caches must key on Origin.
        if "Origin" in request.headers and "*" not in config.cors_origins:
            response.headers.add("Vary", "Origin")

    app.on_response_prepare.append(vary_on_origin)
