"""``/v1/cmcd``: CMCD v2 event-mode reports from players that have no SDK (ingest.cmcd).

Players can be given only a URL, so the ingest key may be the last path segment
(``/v1/cmcd/<key>``) as well as a header. Keys never appear in logs: the collector keeps
no access log and puts no key in a message.
"""

from __future__ import annotations

from aiohttp import web

from ingest.body import decompress, read_body
from ingest.cmcd import (
    CONTENT_TYPES,
    CmcdError,
    Context,
    header_record,
    parse_record,
    split_records,
    to_events,
)
from ingest.errors import MalformedBodyError, TooManyEventsError, UnsupportedMediaTypeError
from ingest.handlers import STATE, Unusable, accept_within_limits
from ingest.validation import MAX_LABEL_CHARS, FieldError

DEFAULT_ORG = "default"  # with INGEST_AUTH_DISABLED and no ?org=


async def cmcd(request: web.Request) -> web.Response:
    """Accept CMCD records: POST bodies (``application/cmcd`` or ``text/cmcd``, one record
    per line), or one record in ``CMCD-*`` headers or a ``CMCD=`` query (GET or POST).

    204 when every record was used or ignored; 400 when none could be used; 401, 413,
    415, 429 and 503 as for ``/v1/events``.
    """
    state = request.app[STATE]
    config = state.config
    org = _org(request)
    lines = await _records(request)
    if len(lines) > config.max_events_per_batch:
        raise TooManyEventsError(f"at most {config.max_events_per_batch} records per request")
    query = request.query
    context = Context(
        org_id=org,
        player=_label(query.get("player")) or "cmcd",
        env=_label(query.get("env")),
        app_name=_label(query.get("app")),
    )
    items: list[object] = []
    ignored = 0
    for line in lines:
        try:
            events = to_events(parse_record(line), line, context)
        except CmcdError as exc:
            items.append(Unusable(line, [FieldError("record", exc.code, exc.message)]))
            continue
        if not events:
            ignored += 1
        items.extend(events)
    state.metrics.cmcd_records.labels("ignored").inc(ignored)
    if not items:
        return web.Response(status=204)
    outcome = await accept_within_limits(state, org, items)
    state.metrics.cmcd_records.labels("used").inc(len(lines) - ignored)
    if outcome.accepted == 0 and outcome.rejected:
        return web.json_response(
            {"accepted": 0, "rejected": outcome.rejected, "errors": outcome.errors}, status=400
        )
    return web.Response(status=204)


def _org(request: web.Request) -> str:
    state = request.app[STATE]
    if state.config.auth_disabled:
        return _label(request.query.get("org")) or DEFAULT_ORG
    key = request.match_info.get("key")
    if key:
        return state.keys.org_for_key(key)
    return state.keys.org_for(request.headers, request.query)


def _label(value: str | None) -> str | None:
    return value[:MAX_LABEL_CHARS] if value else None


async def _records(request: web.Request) -> list[str]:
    config = request.app[STATE].config
    # A record in headers wins over the query (5004-B: the query is ignored then).
    in_headers = header_record(request.headers)
    if in_headers is not None:
        return [in_headers]
    if request.query.get("CMCD", "").strip():
        return split_records(request.query["CMCD"])
    if request.method != "POST":
        raise MalformedBodyError("no CMCD data: send a CMCD= query or CMCD-* headers")
    if request.content_type not in CONTENT_TYPES:
        raise UnsupportedMediaTypeError("Content-Type must be application/cmcd or text/cmcd")
    body = await read_body(request, config.max_body_bytes)
    body = decompress(request, body, config.max_decompressed_bytes)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedBodyError("body is not UTF-8") from exc
    lines = split_records(text)
    if not lines:
        raise MalformedBodyError("body has no CMCD record")
    return lines
