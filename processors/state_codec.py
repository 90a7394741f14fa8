"""The compact binary form of the processor's table values: views and aggregates.

MessagePack (C-accelerated) of the record's values in a fixed field order, so a stored view
carries no field names; numbers keep their Python type (int or float), so a value read back
computes exactly as the one written. Measured here (docs/benchmarks.md): fastavro took
~250 µs to write and ~110 µs to read a view (a union on almost every field); this takes a
few µs each way. Further savings, each read back to the identical value:

- the view id is the table key and is not repeated;
- labels are stored positionally, in ``processors.dims.LABELS`` order;
- ids that are canonical UUIDs (16 bytes) or 64 lowercase hex digits (32 bytes) as bytes;
- floats with an integral value (most time sums, e.g. 300994.0 ms) as the integer (2-5
  bytes instead of 9), with a bit per field saying "read back as a float";
- delta keys a view carries all its life (``KEYS``) as their small integer position.

A stored value starts with a one-byte format version, so a later layout can be told apart.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Any, Final

import msgpack

from processors.dims import LABELS
from processors.view import State

VERSION: Final = 1
_MAX_EXACT: Final = 2**53

# The stored order of a view's fields: every key of processors.view.new_view except
# view_id (the key). Append only. tests/unit/test_state_codec.py holds the two together.
VIEW_FIELDS: Final[tuple[str, ...]] = (
    "partition",
    "labels",
    "org_id",
    "session_id",
    "viewer_id",
    "player_id",
    "video_id",
    "player_name",
    "first_ms",
    "last_ms",
    "last_received_ms",
    "request_ms",
    "state",
    "clock_ms",
    "started",
    "startup_ms",
    "player_startup_ms",
    "page_load_ms",
    "watch_ms",
    "playing_ms",
    "rebuffer_ms",
    "rebuffer_count",
    "seek_wait_ms",
    "seek_count",
    "last_seek_ms",
    "stall",
    "bitrate",
    "bitrate_weighted",
    "bitrate_ms",
    "upshifts",
    "downshifts",
    "height",
    "width",
    "upscale_weighted",
    "upscale_ms",
    "upscale_max",
    "dropped_frames",
    "quartile",
    "completion",
    "failed",
    "business",
    "error_family",
    "error_code",
    "failed_before_start",
    "closed",
    "close_reason",
    "closed_by",
    "recent_ids",  # hashes of the view's last event ids (processors.step.event_id_hash)
    "live",
    "pending",
    "offsets",
    "last_msg",
)

# Delta keys (processors.catalog "name|label values") stored as their position here.
# Append only: stored values refer to these positions.
KEYS: Final[tuple[str, ...]] = (
    "views_started",
    *(
        f"events|{t}"
        for t in (
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
            "view_end",
        )
    ),
    "seeks",
    "bitrate_switches|up",
    "bitrate_switches|down",
    "rebuffer_events",
    "late_events",
    "duplicate_events",
    "video_startup_seconds",
    "player_startup_seconds",
    "page_load_seconds",
    "seek_latency_seconds",
)
_CODE: Final = {key: i for i, key in enumerate(KEYS)}
_view_values: Final = operator.itemgetter(*VIEW_FIELDS)
_IDS: Final = ("session_id", "viewer_id", "player_id")
_ID_POSITIONS: Final = tuple(VIEW_FIELDS.index(n) for n in _IDS)
_LIVE, _PENDING = VIEW_FIELDS.index("live"), VIEW_FIELDS.index("pending")
_LABELS = VIEW_FIELDS.index("labels")
# Fields that may hold a float (processors.view): the candidates for the integral form.
_FLOATS: Final = tuple(
    VIEW_FIELDS.index(n)
    for n in (
        "last_received_ms",
        "startup_ms",
        "player_startup_ms",
        "page_load_ms",
        "watch_ms",
        "playing_ms",
        "rebuffer_ms",
        "seek_wait_ms",
        "bitrate",
        "bitrate_weighted",
        "bitrate_ms",
        "upscale_weighted",
        "upscale_ms",
        "upscale_max",
        "completion",
        "first_ms",
        "last_ms",
        "clock_ms",
        "request_ms",
        "last_seek_ms",
        "height",
        "width",
        "dropped_frames",
        "rebuffer_count",
        "seek_count",
        "quartile",
    )
)


class StateCodecError(ValueError):
    """A stored value this version cannot read."""


# The leading fields view_prefix packs: set by processors.view.new_view, never changed.
_PREFIX_FIELDS: Final = VIEW_FIELDS.index("first_ms")
assert max(_LABELS, *_ID_POSITIONS) < _PREFIX_FIELDS  # noqa: S101 - import-time layout check
assert all(position >= _PREFIX_FIELDS for position in _FLOATS)  # noqa: S101
# A msgpack array of 2 + len(VIEW_FIELDS) (16 to 65535) items: 0xdc and a 16-bit count.
_ARRAY_HEADER: Final = b"\xdc" + (2 + len(VIEW_FIELDS)).to_bytes(2, "big") + bytes([VERSION])
# The rest of the fields, len(VIEW_FIELDS) - _PREFIX_FIELDS of them, also take a 3-byte header.
_REST_HEADER: Final = 3
assert 16 <= len(VIEW_FIELDS) - _PREFIX_FIELDS < 65536  # noqa: S101


def _default(value: Any) -> Any:
    raise TypeError(f"cannot store {type(value).__name__} in the view state")


def _id_out(value: str) -> str | bytes:
    if len(value) == 36 and value[8] == value[13] == value[18] == value[23] == "-":
        digits = value.replace("-", "")
    elif len(value) == 64:
        digits = value
    else:
        return value
    try:
        raw = bytes.fromhex(digits)
    except ValueError:
        return value
    # Only when it reads back as the same text (fromhex also takes capitals and spaces).
    return raw if raw.hex() == digits and len(raw) in (16, 32) else value


def _id_in(value: str | bytes) -> str:
    if isinstance(value, str):
        return value
    h = value.hex()
    if len(value) == 16:
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    return h


def _keys_out(values: Mapping[str, Any]) -> dict[Any, Any]:
    code = _CODE.get
    return {code(k, k): v for k, v in values.items()}


def _keys_in(values: Mapping[Any, Any]) -> dict[str, Any]:
    return {(KEYS[k] if type(k) is int else k): v for k, v in values.items()}


def _deltas_out(deltas: Mapping[str, Any]) -> list[Any]:
    # processors.view builds deltas lazily: {} until something is added, and "no pending
    # deltas" is tested by truthiness, so a missing part stays missing (None).
    c, h = deltas.get("c"), deltas.get("h")
    return [None if c is None else _keys_out(c), None if h is None else _keys_out(h)]


def _deltas_in(stored: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if stored[0] is not None:
        out["c"] = _keys_in(stored[0])
    if stored[1] is not None:
        out["h"] = _keys_in(stored[1])
    return out


def encode_view(view: State, prefix: bytes | None = None) -> bytes:
    """The stored form of ``view``. ``prefix``: ``view_prefix(view)``, computed once per
    view by the caller (the leading fields never change), saves packing them again."""
    values = list(_view_values(view))
    integral = _integral_out(values)
    values[_LIVE] = _deltas_out(view["live"])
    values[_PENDING] = _deltas_out(view["pending"])
    if prefix is None:
        _fixed_out(values, view)
        return _pack([VERSION, integral, *values])
    # The same bytes: the array header for every field, then the version, the bitmask,
    # the packed leading fields and the rest (packed as an array, its header cut off).
    rest = _pack(values[_PREFIX_FIELDS:])
    return b"".join((_ARRAY_HEADER, _pack(integral), prefix, rest[_REST_HEADER:]))


# (position, bit) of each float candidate, for _integral_out.
_FLOAT_BITS: Final = tuple((position, 1 << i) for i, position in enumerate(_FLOATS))


def _integral_out(values: list[Any]) -> int:
    """Replace each integral float candidate by its int; the bitmask of those replaced.

    Once per view write, so written for speed: ``int(v) == v`` (within the exact range,
    which also rules out inf and nan) is ``v.is_integer()`` with one call instead of two,
    ~4 µs for the 26 candidates instead of ~11 (measured)."""
    integral = 0
    for position, bit in _FLOAT_BITS:
        value = values[position]
        if value.__class__ is float and -_MAX_EXACT < value < _MAX_EXACT:
            as_int = int(value)
            if as_int == value:
                values[position] = as_int
                integral |= bit
    return integral


def view_prefix(view: State) -> bytes:
    """The packed leading fields of ``view`` (``_PREFIX_FIELDS``: partition, labels and
    ids, set when the view starts and never changed), for ``encode_view``."""
    values = list(_view_values(view))
    _fixed_out(values, view)
    parts = [_pack(value) for value in values[:_PREFIX_FIELDS]]
    return b"".join(parts)


def _fixed_out(values: list[Any], view: State) -> None:
    labels = view["labels"]
    values[_LABELS] = [labels[name] for name in LABELS]
    for position in _ID_POSITIONS:
        values[position] = _id_out(values[position])


# One packer for every value (a packb call builds one each time: ~1.5 µs of a view write).
# Not shared across threads: the worker encodes on its event loop only.
_packer: Final = msgpack.Packer(use_bin_type=True, default=_default)


def _pack(value: Any) -> bytes:
    return _packer.pack(value)  # type: ignore[no-any-return]


def _unpack(value: bytes) -> list[Any]:
    stored = msgpack.unpackb(value, raw=False, strict_map_key=False)
    if not isinstance(stored, list) or not stored or stored[0] != VERSION:
        raise StateCodecError("unknown state format")
    return stored


def decode_view(view_id: str, value: bytes) -> State:
    stored = _unpack(value)
    values = stored[2:]
    integral = stored[1]
    bit = 0
    while integral:
        if integral & 1:
            position = _FLOATS[bit]
            values[position] = float(values[position])
        integral >>= 1
        bit += 1
    view = dict(zip(VIEW_FIELDS, values, strict=True))
    view["view_id"] = view_id
    view["labels"] = dict(zip(LABELS, view["labels"], strict=True))
    for name in _IDS:
        view[name] = _id_in(view[name])
    view["live"] = _deltas_in(view["live"])
    view["pending"] = _deltas_in(view["pending"])
    return view


def encode_aggregate(agg: Mapping[str, Any]) -> bytes:
    labels = agg["labels"]
    histograms = {k: [h["b"], h["sum"], h["count"]] for k, h in agg["h"].items()}
    values = [agg["partition"], [labels[n] for n in LABELS], agg["offsets"], agg["c"], histograms]
    return _pack([VERSION, *values])


def decode_aggregate(value: bytes) -> dict[str, Any]:
    _version, partition, labels, offsets, counters, histograms = _unpack(value)
    return {
        "partition": partition,
        "labels": dict(zip(LABELS, labels, strict=True)),
        "offsets": offsets,
        "c": counters,
        "h": {k: {"b": b, "sum": s, "count": n} for k, (b, s, n) in histograms.items()},
    }
