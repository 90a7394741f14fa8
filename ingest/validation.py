"""Per-event validation of the player event contract.

Pure functions: given one decoded JSON event, the authenticated organisation and the
current time, return either the Avro-ready record or *every* field error found. One
bad event never affects its neighbours; the caller decides what to do with each.

The accepted contract is the original OpenQoE SDK's envelope and its 12 event types,
plus ``view_end`` and the per-view ``sequence`` of this project's SDK (``docs/events.md``),
including the spellings real adapters send (``qualitychange``) and ``null`` for "not
known". Unknown fields are kept as JSON in ``extra_json``.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

EVENT_TYPES: Final = frozenset(
    {
        "playerready",
        "viewstart",
        "playing",
        "pause",
        "seek",
        "stall_start",
        "stall_end",
        "ended",
        "error",
        "quartile",
        "heartbeat",
        "quality_change",
        # The SDK's explicit end of a view (page unload, player destroyed, new source), so
        # the view closes at once instead of after the inactivity timeout.
        "view_end",
    }
)
# Spellings that real SDK adapters send for the same events (reference §1.3, §1.6).
EVENT_TYPE_ALIASES: Final = {
    "qualitychange": "quality_change",
    "stallstart": "stall_start",
    "stallend": "stall_end",
}

MAX_ID_CHARS: Final = 128
MAX_ORG_CHARS: Final = 100
MAX_LABEL_CHARS: Final = 256
# Free text is truncated rather than rejected: a long error message is still a real error.
MAX_TEXT_CHARS: Final = 1024
MAX_CONTEXT_JSON_CHARS: Final = 8192
MAX_REJECTED_JSON_CHARS: Final = 65536
# Players compute completion as currentTime/duration; float noise can overshoot 1.
COMPLETION_TOLERANCE: Final = 0.01
MAX_TIMESTAMP_MS: Final = 253402300799999  # 9999-12-31T23:59:59.999Z
MAX_INT: Final = 2**63
_MAX_FLOAT: Final = sys.float_info.max


@dataclass(frozen=True, slots=True)
class FieldError:
    """One reason an event was rejected."""

    field: str
    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "message": self.message}


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """How far event_time may be from the collector's clock."""

    max_age_ms: int = 24 * 3600 * 1000
    max_future_ms: int = 5 * 60 * 1000


class _Errors(list[FieldError]):
    def add(self, field: str, code: str, message: str) -> None:
        self.append(FieldError(field, code, message))


# --- scalar coercions -------------------------------------------------------------------
# Each returns the coerced value or None after recording an error. Absent and null are
# handled by the caller, so these only see real values.

Coerce = Callable[[Any, str, _Errors], Any]


def _number(value: Any, path: str, errors: _Errors) -> float | None:
    # Fast path for the usual case; NaN, infinities and negatives fall through to the checks.
    kind = type(value)
    if kind is float and 0.0 <= value <= _MAX_FLOAT:
        return value  # type: ignore[no-any-return]
    if kind is int and 0 <= value <= MAX_INT:
        return float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        errors.add(path, "wrong_type", "must be a number")
        return None
    # JSON integers are unbounded; past 2^63 they are nonsense here (and too big for a float).
    if isinstance(value, int) and abs(value) > MAX_INT:
        errors.add(path, "out_of_range", "must be below 2^63")
        return None
    if not math.isfinite(value):
        errors.add(path, "out_of_range", "must be finite")
        return None
    if value < 0:
        errors.add(path, "out_of_range", "must be >= 0")
        return None
    return float(value)


def _number_or_numeric_string(value: Any, path: str, errors: _Errors) -> float | None:
    # HLS.js reports framerate as a string such as "29.970".
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            errors.add(path, "wrong_type", "must be a number")
            return None
    return _number(value, path, errors)


def _count(value: Any, path: str, errors: _Errors) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        errors.add(path, "wrong_type", "must be an integer")
        return None
    if isinstance(value, float) and not value.is_integer():
        errors.add(path, "wrong_type", "must be an integer")
        return None
    if value < 0 or value > 2**62:
        errors.add(path, "out_of_range", "must be between 0 and 2^62")
        return None
    return int(value)


def _bool(value: Any, path: str, errors: _Errors) -> bool | None:
    if not isinstance(value, bool):
        errors.add(path, "wrong_type", "must be true or false")
        return None
    return value


def _label(value: Any, path: str, errors: _Errors) -> str | None:
    if not isinstance(value, str):
        errors.add(path, "wrong_type", "must be a string")
        return None
    if len(value) > MAX_LABEL_CHARS:
        errors.add(path, "too_long", f"must be at most {MAX_LABEL_CHARS} characters")
        return None
    return value


def _text(value: Any, path: str, errors: _Errors) -> str | None:
    if not isinstance(value, str):
        errors.add(path, "wrong_type", "must be a string")
        return None
    return value[:MAX_TEXT_CHARS]


def _code(value: Any, path: str, errors: _Errors) -> str | None:
    # Players report error codes as numbers or strings; keep one type on the wire.
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) <= MAX_INT:
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if float(value).is_integer() else str(value)
    return _label(value, path, errors)


def _ratio(value: Any, path: str, errors: _Errors) -> float | None:
    number = _number(value, path, errors)
    if number is None:
        return None
    if number > 1 + COMPLETION_TOLERANCE:
        errors.add(path, "out_of_range", "must be a ratio between 0 and 1")
        return None
    return min(number, 1.0)


def _quartile(value: Any, path: str, errors: _Errors) -> int | None:
    if isinstance(value, bool) or value not in (25, 50, 75, 100):
        errors.add(path, "out_of_range", "must be one of 25, 50, 75, 100")
        return None
    return int(value)


def _resolution(value: Any, path: str, errors: _Errors) -> dict[str, int] | None:
    if not isinstance(value, dict):
        errors.add(path, "wrong_type", "must be an object {width, height}")
        return None
    before = len(errors)
    width = _required(value, "width", f"{path}.width", _count, errors)
    height = _required(value, "height", f"{path}.height", _count, errors)
    if len(errors) > before or width is None or height is None:
        return None
    if width > 2**31 - 1 or height > 2**31 - 1:
        errors.add(path, "out_of_range", "width and height must fit in 32 bits")
        return None
    return {"width": width, "height": height}


def _json_object(value: Any, path: str, errors: _Errors) -> str | None:
    if not isinstance(value, dict):
        errors.add(path, "wrong_type", "must be an object")
        return None
    text = _compact_json(value)
    if len(text) > MAX_CONTEXT_JSON_CHARS:
        errors.add(path, "too_long", f"must serialise to at most {MAX_CONTEXT_JSON_CHARS} chars")
        return None
    return text


def _required(obj: Mapping[str, Any], key: str, path: str, coerce: Coerce, errors: _Errors) -> Any:
    value = obj.get(key)
    if value is None:
        errors.add(path, "missing", "is required")
        return None
    return coerce(value, path, errors)


# --- nested objects ---------------------------------------------------------------------
# JSON key -> (Avro field, coercion). Unknown keys are kept in the event's extra_json.

_CONTEXT_OBJECTS: Final[dict[str, dict[str, tuple[str, Coerce]]]] = {
    "device": {
        "name": ("name", _label),
        "model": ("model", _label),
        "category": ("category", _label),
        "manufacturer": ("manufacturer", _label),
    },
    "os": {"family": ("family", _label), "version": ("version", _label)},
    "browser": {"family": ("family", _label), "version": ("version", _label)},
    "player": {
        "name": ("name", _label),
        "version": ("version", _label),
        "autoplay": ("autoplay", _bool),
        "preload": ("preload", _label),
    },
    "network": {
        "asn": ("asn", _count),
        "country_code": ("country_code", _label),
        "region": ("region", _label),
        "city": ("city", _label),
    },
    "cdn": {
        "provider": ("provider", _label),
        "edge_pop": ("edge_pop", _label),
        "origin": ("origin", _label),
    },
    "video": {
        "id": ("id", _label),
        "title": ("title", _text),
        "series": ("series", _text),
        "duration": ("duration", _number),
        "source_url": ("source_url", _text),
        "stream_type": ("stream_type", _label),
    },
    "cmcd": {
        **{k: (k, _number) for k in ("br", "bl", "d", "dl", "mtp", "pr", "rtp", "tb")},
        **{k: (k, _label) for k in ("cid", "nor", "nrr", "ot", "sf", "sid", "st")},
        "bs": ("bs", _bool),
        "su": ("su", _bool),
        "v": ("v", _count),
    },
}

_DATA_FIELDS: Final[dict[str, tuple[str, Coerce]]] = {
    "player_startup_time": ("player_startup_time", _number),
    "page_load_time": ("page_load_time", _number),
    "video_startup_time": ("video_startup_time", _number),
    "preroll_requested": ("preroll_requested", _bool),
    "bitrate": ("bitrate", _number),
    "resolution": ("resolution", _resolution),
    "framerate": ("framerate", _number_or_numeric_string),
    "playing_time": ("playing_time", _number),
    "from": ("from_position", _number),
    "to": ("to_position", _number),
    "seek_latency": ("seek_latency", _number),
    "buffer_length": ("buffer_length", _number),
    "stall_duration": ("stall_duration", _number),
    "previous_bitrate": ("previous_bitrate", _number),
    # The original worker read old_bitrate although its docs said previous_bitrate.
    "old_bitrate": ("previous_bitrate", _number),
    "new_bitrate": ("new_bitrate", _number),
    "previous_resolution": ("previous_resolution", _resolution),
    "new_resolution": ("new_resolution", _resolution),
    "trigger": ("trigger", _label),
    "total_watch_time": ("total_watch_time", _number),
    "completion_rate": ("completion_rate", _ratio),
    "rebuffer_count": ("rebuffer_count", _count),
    "rebuffer_duration": ("rebuffer_duration", _number),
    "error_family": ("error_family", _label),
    "error_id": ("error_id", _code),
    "error_code": ("error_code", _code),
    "error_message": ("error_message", _text),
    "fatal": ("fatal", _bool),
    "error_context": ("error_context_json", _json_object),
    "quartile": ("quartile", _quartile),
    "watch_time": ("watch_time", _number),
    "dropped_frames": ("dropped_frames", _count),
    "reason": ("reason", _label),
    "player_state": ("player_state", _label),
}
# The same tables with each field's error path ("device.name", "data.bitrate") built once.
_CONTEXT_SPECS: Final = {
    name: {key: (avro, coerce, f"{name}.{key}") for key, (avro, coerce) in spec.items()}
    for name, spec in _CONTEXT_OBJECTS.items()
}
_DATA_SPECS: Final = {
    key: (avro, coerce, f"data.{key}") for key, (avro, coerce) in _DATA_FIELDS.items()
}
_REQUIRED_DATA: Final[dict[str, tuple[str, ...]]] = {
    "error": ("error_family",),
    "quartile": ("quartile",),
}

_IDS: Final = (
    ("org_id", MAX_ORG_CHARS),
    ("player_id", MAX_ID_CHARS),
    ("view_id", MAX_ID_CHARS),
    ("session_id", MAX_ID_CHARS),
    ("viewer_id", MAX_ID_CHARS),
)
_OPTIONAL_LABELS: Final = ("env", "app_name", "app_version")
_KNOWN_TOP: Final = frozenset(
    {"event_id", "event_type", "event_time", "viewer_time", "playback_time", "data", "sequence"}
    | {name for name, _ in _IDS}
    | set(_OPTIONAL_LABELS)
    | set(_CONTEXT_OBJECTS)
)


def _compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _context_object(
    name: str, value: Any, errors: _Errors, extra: dict[str, Any]
) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        errors.add(name, "wrong_type", "must be an object")
        return None
    spec = _CONTEXT_SPECS[name]
    out: dict[str, Any] = {}
    unknown: dict[str, Any] = {}
    for key, item in value.items():
        field = spec.get(key)
        if field is None:
            unknown[key] = item
        elif item is not None:
            out[field[0]] = field[1](item, field[2], errors)
    if unknown:
        extra[name] = unknown
    # The SDK always sends "network": {}; an object with no known values is just absent.
    return out or None


def _data(event_type: str, value: Any, errors: _Errors) -> dict[str, Any] | None:
    if value is None:
        value = {}
    elif not isinstance(value, dict):
        errors.add("data", "wrong_type", "must be an object")
        return None
    out: dict[str, Any] = {}
    unknown: dict[str, Any] = {}
    for key, item in value.items():
        field = _DATA_SPECS.get(key)
        if field is None:
            unknown[key] = item
        elif item is not None:
            out[field[0]] = field[1](item, field[2], errors)
    for key in _REQUIRED_DATA.get(event_type, ()):
        if value.get(key) is None:
            errors.add(f"data.{key}", "missing", f"is required for {event_type} events")
    if unknown:
        out["extra_json"] = _compact_json(unknown)
    return out or None


def _timestamp(value: Any, path: str, errors: _Errors) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        errors.add(path, "wrong_type", "must be a number (Unix milliseconds)")
        return None
    if value <= 0 or value > MAX_TIMESTAMP_MS or not math.isfinite(value):
        errors.add(path, "out_of_range", "must be a positive Unix time in milliseconds")
        return None
    return round(value)


def validate_event(
    raw: Any,
    *,
    now_ms: int,
    org_id: str | None,
    window: TimeWindow = TimeWindow(),
) -> dict[str, Any] | list[FieldError]:
    """Validate one event of a batch.

    Args:
        raw: the decoded JSON value of one element of ``events``.
        now_ms: the collector's clock, Unix milliseconds (received time).
        org_id: the organisation of the ingest key, or None when auth is disabled.
        window: how old or how far in the future ``event_time`` may be.

    Returns:
        The record for ``schemas/player_event.avsc``, or every error found.
    """
    errors = _Errors()
    if not isinstance(raw, dict):
        errors.add("", "wrong_type", "event must be a JSON object")
        return errors

    record: dict[str, Any] = {"received_time": now_ms}
    extra: dict[str, Any] = {}

    event_type = raw.get("event_type")
    if event_type is None:
        errors.add("event_type", "missing", "is required")
    elif not isinstance(event_type, str):
        errors.add("event_type", "wrong_type", "must be a string")
    else:
        canonical = EVENT_TYPE_ALIASES.get(event_type, event_type)
        if canonical not in EVENT_TYPES:
            errors.add(
                "event_type",
                "unknown_event_type",
                f"'{event_type[:64]}' is not one of: {', '.join(sorted(EVENT_TYPES))}",
            )
        record["event_type"] = canonical
        record["event_type_sent"] = event_type if canonical != event_type else None

    event_time = raw.get("event_time")
    if event_time is None:
        errors.add("event_time", "missing", "is required")
    else:
        ts = _timestamp(event_time, "event_time", errors)
        if ts is not None:
            if ts < now_ms - window.max_age_ms:
                errors.add("event_time", "too_old", "is older than the accepted window")
            elif ts > now_ms + window.max_future_ms:
                errors.add("event_time", "in_future", "is further in the future than allowed")
            record["event_time"] = ts
    viewer_time = raw.get("viewer_time")
    record["viewer_time"] = (
        None if viewer_time is None else _timestamp(viewer_time, "viewer_time", errors)
    )
    playback_time = raw.get("playback_time")
    record["playback_time"] = (
        None if playback_time is None else _number(playback_time, "playback_time", errors)
    )

    for name, max_chars in _IDS:
        value = raw.get(name)
        if value is None or value == "":
            errors.add(name, "missing", "is required")
        elif not isinstance(value, str):
            errors.add(name, "wrong_type", "must be a string")
        elif len(value) > max_chars:
            errors.add(name, "too_long", f"must be at most {max_chars} characters")
        else:
            record[name] = value
    if org_id is not None and record.get("org_id", org_id) != org_id:
        errors.add("org_id", "org_mismatch", "does not match the organisation of the ingest key")

    event_id = raw.get("event_id")
    if event_id is not None:
        if not isinstance(event_id, str) or not event_id:
            errors.add("event_id", "wrong_type", "must be a non-empty string")
        elif len(event_id) > MAX_ID_CHARS:
            errors.add("event_id", "too_long", f"must be at most {MAX_ID_CHARS} characters")
        else:
            record["event_id"] = event_id
    sequence = raw.get("sequence")
    record["sequence"] = None if sequence is None else _count(sequence, "sequence", errors)
    for name in _OPTIONAL_LABELS:
        value = raw.get(name)
        record[name] = None if value is None else _label(value, name, errors)
    for name in _CONTEXT_OBJECTS:
        value = raw.get(name)
        record[name] = None if value is None else _context_object(name, value, errors, extra)
    record["data"] = _data(record.get("event_type", ""), raw.get("data"), errors)

    for key, value in raw.items():
        if key not in _KNOWN_TOP:
            extra[key] = value
    if errors:
        return errors
    record["extra_json"] = _compact_json(extra) if extra else None
    return record


def rejected_json(raw: Any) -> str:
    """The event as compact JSON for the dead-letter topic, bounded in size."""
    try:
        text = _compact_json(raw)
    except ValueError:  # NaN cannot appear: the body parser refuses it
        text = json.dumps(repr(raw))
    return text[:MAX_REJECTED_JSON_CHARS]
