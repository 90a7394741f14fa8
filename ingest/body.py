"""Reading a request body within limits: size, gzip, JSON, batch shape."""

from __future__ import annotations

import json
import zlib
from typing import Any, NoReturn
from urllib.parse import urlsplit

from aiohttp import web

from ingest.errors import (
    BodyTooLargeError,
    ForbiddenOriginError,
    MalformedBodyError,
    TooManyEventsError,
    UnsupportedMediaTypeError,
)

_CHUNK = 64 * 1024


async def read_body(request: web.Request, max_bytes: int) -> bytes:
    """The raw (still encoded) body, refusing more than ``max_bytes`` before reading it all."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise BodyTooLargeError(f"body is larger than {max_bytes} bytes")
    body = bytearray()
    async for chunk in request.content.iter_chunked(_CHUNK):
        body += chunk
        if len(body) > max_bytes:
            raise BodyTooLargeError(f"body is larger than {max_bytes} bytes")
    return bytes(body)


def decompress(request: web.Request, body: bytes, max_bytes: int) -> bytes:
    """Gunzip when the request says so, never producing more than ``max_bytes``.

    The application turns off aiohttp's automatic decompression so that a gzip bomb
    is stopped here at ``max_bytes`` and answered with 413 rather than inflated.
    """
    if request.headers.get("Content-Encoding", "").strip().lower() != "gzip":
        return body
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise MalformedBodyError("body is not valid gzip") from exc
    if len(out) > max_bytes:
        raise BodyTooLargeError(f"decompressed body is larger than {max_bytes} bytes")
    if not inflater.eof:
        raise MalformedBodyError("gzip body is truncated")
    return out


# text/plain is what navigator.sendBeacon and a no-preflight keepalive fetch can send
# cross-origin (a CORS-safelisted type); the body is still the JSON batch.
ACCEPTED_CONTENT_TYPES = frozenset({"application/json", "text/plain"})


def check_content_type(request: web.Request) -> None:
    if request.content_type not in ACCEPTED_CONTENT_TYPES:
        raise UnsupportedMediaTypeError(
            "Content-Type must be application/json (or text/plain holding the JSON batch)"
        )
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        raise UnsupportedMediaTypeError("Content-Encoding must be gzip or absent")


def check_simple_request_origin(request: web.Request, allowed: tuple[str, ...]) -> None:
    """Refuse a text/plain post from a page the CORS policy does not allow.

    Browsers send text/plain cross-origin without a preflight, so the CORS allow-list
    alone would not stop another site's pages from posting; this restores the check the
    preflight makes for application/json. Same-origin pages are always allowed.
    """
    origin = request.headers.get("Origin")
    if request.content_type != "text/plain" or origin is None or "*" in allowed:
        return
    if origin in allowed or urlsplit(origin).netloc == request.host:
        return
    raise ForbiddenOriginError("this origin may not post events (INGEST_CORS_ORIGINS)")


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def parse_events(body: bytes, max_events: int) -> list[Any]:
    """Decode ``{"events": [...]}`` and return the list."""
    try:
        document = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        # UnicodeDecodeError is a ValueError too.
        raise MalformedBodyError("body is not valid JSON") from exc
    if not isinstance(document, dict) or not isinstance(document.get("events"), list):
        raise MalformedBodyError('body must be an object {"events": [...]}')
    events: list[Any] = document["events"]
    if not events:
        raise MalformedBodyError("events must not be empty")
    if len(events) > max_events:
        raise TooManyEventsError(f"at most {max_events} events per request")
    return events
