"""HTTP handlers: thin glue between the request, validation and the publisher."""

from __future__ import annotations

import importlib.metadata
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from ingest.auth import KeyRing
from ingest.body import (
    check_content_type,
    check_simple_request_origin,
    decompress,
    parse_events,
    read_body,
)
from ingest.config import IngestConfig
from ingest.errors import RequestError, UnauthorizedError
from ingest.limits import InFlightLimit, OrgRateLimit
from ingest.metrics import IngestMetrics
from ingest.publisher import EventPublisher, Message
from ingest.validation import (
    MAX_ID_CHARS,
    FieldError,
    TimeWindow,
    rejected_json,
    validate_event,
)
from schemas import SingleObjectCodec

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class IngestState:
    """Everything the handlers share, built once per application."""

    config: IngestConfig
    publisher: EventPublisher
    keys: KeyRing
    rate_limit: OrgRateLimit
    in_flight: InFlightLimit
    metrics: IngestMetrics
    registry: CollectorRegistry
    window: TimeWindow
    event_codec: SingleObjectCodec
    rejected_codec: SingleObjectCodec
    wall_clock: Callable[[], float]


STATE = web.AppKey("state", IngestState)


def _error_response(exc: RequestError) -> web.Response:
    headers = {}
    if exc.retry_after_s is not None:
        headers["Retry-After"] = str(exc.retry_after_s)
    if isinstance(exc, UnauthorizedError):
        headers["WWW-Authenticate"] = 'Bearer realm="OpenQoE"'
    return web.json_response(
        {"error": exc.code, "message": exc.message}, status=exc.http_status, headers=headers
    )


@web.middleware
async def errors_and_metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn ``RequestError`` into its JSON answer and count every response."""
    metrics = request.app[STATE].metrics
    route = request.match_info.route.name or "unmatched"
    started = time.perf_counter()
    metrics.in_flight_requests.inc()
    code = 500
    try:
        response = await handler(request)
        code = response.status
        return response
    except RequestError as exc:
        code = exc.http_status
        return _error_response(exc)
    except web.HTTPException as exc:
        code = exc.status
        raise
    finally:
        metrics.in_flight_requests.dec()
        metrics.requests.labels(route, str(code)).inc()
        metrics.request_duration.labels(route).observe(time.perf_counter() - started)


async def post_events(request: web.Request) -> web.Response:
    """``POST /v1/events``: validate each event, publish, answer after Kafka acked."""
    state = request.app[STATE]
    config = state.config
    org = None if config.auth_disabled else state.keys.org_for(request.headers, request.query)
    check_content_type(request)
    check_simple_request_origin(request, config.cors_origins)
    body = await read_body(request, config.max_body_bytes)
    body = decompress(request, body, config.max_decompressed_bytes)
    events = parse_events(body, config.max_events_per_batch)
    outcome = await accept_within_limits(state, org, events)
    status = 202 if not outcome.rejected else 207 if outcome.accepted else 400
    return web.json_response(
        {"accepted": outcome.accepted, "rejected": outcome.rejected, "errors": outcome.errors},
        status=status,
    )


@dataclass(frozen=True, slots=True)
class Unusable:
    """An item that failed before validation (e.g. a CMCD record that does not parse):
    it goes to the dead letters with its errors, as sent."""

    sent: str
    errors: list[FieldError]


@dataclass(frozen=True, slots=True)
class Outcome:
    accepted: int
    rejected: int
    errors: list[dict[str, Any]]


async def accept_within_limits(state: IngestState, org: str | None, items: list[Any]) -> Outcome:
    """Validate and publish ``items`` under the org's rate limit and the in-flight bound
    (429 past either), answering only after Kafka acknowledged them."""
    try:
        state.rate_limit.take(org or "", len(items))
        state.in_flight.acquire(len(items))
    except RequestError as exc:
        state.metrics.events_rejected.labels(exc.code).inc(len(items))
        raise
    state.metrics.in_flight_events.inc(len(items))
    try:
        return await _accept(state, org, items)
    finally:
        state.in_flight.release(len(items))
        state.metrics.in_flight_events.dec(len(items))


async def _accept(state: IngestState, org: str | None, events: list[Any]) -> Outcome:
    config = state.config
    now_ms = int(state.wall_clock() * 1000)
    accepted: list[Message] = []
    accepted_types: Counter[str] = Counter()
    rejected: list[Message] = []
    reasons: Counter[str] = Counter()
    errors: list[dict[str, Any]] = []
    for index, raw in enumerate(events):
        result: dict[str, Any] | list[FieldError]
        if isinstance(raw, Unusable):
            result, raw = raw.errors, raw.sent
        else:
            result = validate_event(raw, now_ms=now_ms, org_id=org, window=state.window)
        if isinstance(result, dict):
            accepted.append(
                (config.raw_topic, result["view_id"].encode(), state.event_codec.encode(result))
            )
            accepted_types[result["event_type"]] += 1
            continue
        field_errors = [e.as_dict() for e in result]
        errors.extend({"index": index, **e} for e in field_errors)
        reasons[result[0].code] += 1
        dead_letter = {
            "received_time": now_ms,
            "org_id": org,
            "batch_index": index,
            "errors": field_errors,
            "event_json": rejected_json(raw),
        }
        rejected.append(
            (config.rejected_topic, _dead_letter_key(raw), state.rejected_codec.encode(dead_letter))
        )

    started = time.perf_counter()
    try:
        await state.publisher.publish(accepted + rejected)
    except RequestError as exc:
        state.metrics.events_rejected.labels(exc.code).inc(len(accepted))
        raise
    state.metrics.produce_duration.observe(time.perf_counter() - started)
    for event_type, n in accepted_types.items():
        state.metrics.events_accepted.labels(event_type).inc(n)
    for reason, n in reasons.items():
        state.metrics.events_rejected.labels(reason).inc(n)

    return Outcome(len(accepted), len(rejected), errors)


def _dead_letter_key(raw: Any) -> bytes | None:
    view_id = raw.get("view_id") if isinstance(raw, dict) else None
    if isinstance(view_id, str) and 0 < len(view_id) <= MAX_ID_CHARS:
        return view_id.encode()
    return None


try:
    _VERSION = importlib.metadata.version("openqoe")
except importlib.metadata.PackageNotFoundError:  # running from a source tree, not installed
    _VERSION = "unknown"

ENDPOINTS = {
    "POST /v1/events": "ingest a batch of player events (X-API-Key or Authorization: Bearer)",
    "GET /health": "liveness",
    "GET /ready": "readiness: Kafka reachable and both topics present",
    "GET /metrics": "the collector's Prometheus metrics",
}


async def index(request: web.Request) -> web.Response:
    """What this service is and where its endpoints are: a person opening the collector's
    URL in a browser gets an answer instead of a 404."""
    return web.json_response(
        {
            "service": "openqoe-collector",
            "version": _VERSION,
            "endpoints": ENDPOINTS,
            "docs": "docs/events.md and ingest/openapi.yaml in the OpenQoE source",
        }
    )


async def health(request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return web.json_response({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    """Readiness: Kafka answers and both topics exist."""
    state = request.app[STATE]
    ok = await state.publisher.ready((state.config.raw_topic, state.config.rejected_topic))
    state.metrics.kafka_ready.set(1 if ok else 0)
    if ok:
        return web.json_response({"status": "ready"})
    return web.json_response({"status": "not_ready", "kafka": False}, status=503)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition of the collector's own metrics."""
    payload = generate_latest(request.app[STATE].registry)
    return web.Response(body=payload, headers={"Content-Type": CONTENT_TYPE_LATEST})
