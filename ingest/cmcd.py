"""CMCD v2 event-mode records (CTA-5004-B) turned into OpenQoE player events.

A player configured with our collector as a CMCD event target POSTs newline-separated
records, each an RFC 8941 dictionary (``e=ps,sid="…",sta=p,ts=…,v=2``). Each record maps,
on its own and without any state, to zero, one or two events of our contract, so the
processor computes the same view values as for SDK views (reference/qoe-metrics.md §3.2):

- a play-state change (``e=ps``) becomes the event of the new state: ``s`` starting ->
  ``viewstart`` (play intent), ``p`` -> ``playing`` (first frame, end of a stall), ``r``
  -> ``stall_start``, ``k`` -> ``seek`` and ``stall_start`` (the processor classes a stall
  right after a seek as a seek wait), ``a`` -> ``pause``, ``e`` -> ``ended``, ``f`` -> a
  fatal ``error`` when the record carries the codes (``ec``; without them the error report
  that players send with the fatal state is the failure), ``q`` (quit) -> ``view_end``
  (the view ends at once; quitting before the first frame is an exit before video start);
- an interval report (``e=t``) while playing -> ``heartbeat`` (bitrate, dropped frames);
- a bitrate change (``e=bc``) -> ``quality_change``; an error (``e=e``) -> ``error``, fatal
  when the record's state is fatal (``f``) or starting (``s``: a startup failure; dash.js
  reports a failed manifest load only so).

Other events and states carry nothing our metrics use and are ignored (counted).

The view is the pair (``sid``, ``cid``); records are de-duplicated on (``sid``, ``sn``)
by a deterministic ``event_id`` that the processor drops when it sees it again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

import http_sf

CONTENT_TYPES: Final = ("application/cmcd", "text/cmcd")
SUPPORTED_VERSION: Final = 2
# Request-mode header shards; their dictionaries merge into one record.
HEADER_NAMES: Final = ("CMCD-Request", "CMCD-Object", "CMCD-Status", "CMCD-Session")

# sta token -> our event types, in order.
_STATE_EVENTS: Final[dict[str, tuple[str, ...]]] = {
    "s": ("viewstart",),
    "p": ("playing",),
    "r": ("stall_start",),
    "k": ("seek", "stall_start"),
    "a": ("pause",),
    "e": ("ended",),
    "f": ("error",),
    "q": ("view_end",),
}
_ERROR_FAMILIES: Final = (
    ("manifest", ("MANIFEST", "PLAYLIST", "MPD")),
    ("network", ("NETWORK", "HTTP", "TIMEOUT", "LOAD", "FETCH")),
    ("decode", ("DECODE", "CODEC")),
    ("media", ("MEDIA", "BUFFER", "DRM", "KEY")),
)
# dash.js 5.2 sends its own numeric error codes as ``ec`` (the spec says strings): their
# families, as the SDK's dash.js adapter has them (sdk/src/adapters/dashjs.ts).
_DASHJS_CODE_FAMILIES: Final = {
    **dict.fromkeys((10, 11, 12, 25, 29, 31, 32, 34), "manifest"),
    **dict.fromkeys((15, 16, 17, 18, 19, 26, 27, 28), "network"),
    **dict.fromkeys((20, 21, 22, 23, 35), "media"),
    24: "drm",
}
# States in which an error report (e=e) is fatal: the fatal state itself, and starting
# (before the first frame: a startup failure, reference/qoe-metrics.md §3.2).
_FATAL_ERROR_STATES: Final = ("f", "s")
# Keys our Avro ``cmcd`` record has as a single number: v2 sends them as inner lists.
_SCALAR_KEYS: Final = ("br", "bl", "mtp", "tb")


class CmcdError(ValueError):
    """A record we cannot use; the message says why (it goes to the dead letters)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Context:
    """What the collector URL says about the player, for every record of a request."""

    org_id: str
    player: str = "cmcd"
    env: str | None = None
    app_name: str | None = None


def split_records(body: str) -> list[str]:
    """Records of a POST body: one per line, surrounding spaces ignored; empty lines (a
    trailing LF, as @svta/cml-cmcd always sends) are not records."""
    return [line.strip() for line in body.split("\n") if line.strip()]


def parse_record(text: str) -> dict[str, Any]:
    """One record as a plain dict: tokens as str, inner lists as lists of
    ``(value, params)``, decimals as float. Raises ``CmcdError`` on bad syntax."""
    try:
        parsed = http_sf.parse(text.encode(), tltype="dictionary")
    except http_sf.StructuredFieldError as exc:
        raise CmcdError("unparseable", f"not an RFC 8941 dictionary: {exc}") from exc
    except UnicodeError as exc:
        raise CmcdError("unparseable", f"not ASCII: {exc}") from exc
    if not isinstance(parsed, dict):  # tltype="dictionary" always gives one
        raise CmcdError("unparseable", "not an RFC 8941 dictionary")
    members: dict[str, Any] = parsed
    return {key: _plain(value) for key, (value, _params) in members.items()}


def header_record(headers: Mapping[str, str]) -> str | None:
    """The record carried in ``CMCD-*`` request headers as one line (the shards are
    dictionaries, so joining them with commas merges them), or None when there are none."""
    shards = [headers[name].strip() for name in HEADER_NAMES if headers.get(name, "").strip()]
    return ",".join(shards) if shards else None


def _plain(value: Any) -> Any:
    if isinstance(value, list):  # inner list of (item, params)
        return [(_plain(item), {k: _plain(v) for k, v in params.items()}) for item, params in value]
    if isinstance(value, http_sf.Token):
        return str(value)
    if isinstance(value, Decimal):
        return float(value)
    return value


def _int(record: Mapping[str, Any], key: str) -> int | None:
    value = record.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(record: Mapping[str, Any], key: str) -> str | None:
    value = record.get(key)
    return value if isinstance(value, str) else None


def _video_kbps(record: Mapping[str, Any], key: str) -> float | None:
    """The video entry of an inner list such as ``br=(4200;v 256;a)`` (the entry with the
    ``v`` or ``av`` parameter, else the first), or a v1 plain number."""
    value = record.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, list) or not value:
        return None
    numbers = [(v, p) for v, p in value if isinstance(v, int | float) and not isinstance(v, bool)]
    for number, params in numbers:
        if params.get("v") is True or params.get("av") is True:
            return float(number)
    return float(numbers[0][0]) if numbers else None


def _strings(record: Mapping[str, Any], key: str) -> list[str]:
    value = record.get(key)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v, _ in value if isinstance(v, str)]
    return []


def _codes(record: Mapping[str, Any]) -> list[str]:
    """``ec``: a list of strings, or (dash.js 5.2) a bare integer."""
    value = record.get("ec")
    if isinstance(value, int) and not isinstance(value, bool):
        return [str(value)]
    if isinstance(value, list):
        return [str(v) for v, _ in value if isinstance(v, str | int) and not isinstance(v, bool)]
    return _strings(record, "ec")


def error_family(codes: list[str], player: str | None = None) -> str:
    """Our error family for player error codes (app-namespaced strings, e.g. hls.js'
    ``manifestLoadError``): a best guess from their words; dash.js' numeric codes by its
    own table when the target URL names the player ``dashjs``."""
    if player == "dashjs" and codes and codes[0].isdigit():
        return _DASHJS_CODE_FAMILIES.get(int(codes[0]), "other")
    text = " ".join(codes).upper()
    for family, words in _ERROR_FAMILIES:
        if any(word in text for word in words):
            return family
    return "other"


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def view_id(org_id: str, sid: str, cid: str | None) -> str:
    """The view of a CMCD session: one per (``sid``, ``cid``) within an organisation."""
    return "cmcd-" + _digest(org_id, sid, cid or "")[:32]


def to_events(record: Mapping[str, Any], text: str, context: Context) -> list[dict[str, Any]]:
    """The events of our contract that one record stands for (possibly none).

    Raises ``CmcdError`` when the record cannot be a CMCD v2 event report of a session.
    The events still go through the collector's validation like any other.
    """
    version = _int(record, "v")
    if version is None:
        raise CmcdError("missing", "v is required in event mode (v=2)")
    if version > SUPPORTED_VERSION:
        raise CmcdError("unsupported_version", f"CMCD version {version} is newer than 2")
    event = _str(record, "e")
    if event is None:
        raise CmcdError("missing", "e (the event type token) is required in event mode")
    ts = _int(record, "ts")
    if ts is None:
        raise CmcdError("missing", "ts (epoch ms) is required in event mode")
    sid = _str(record, "sid")
    if not sid:
        raise CmcdError("missing", "sid is required: it identifies the playback session")

    state = _str(record, "sta")
    codes = _codes(record)
    kinds: tuple[str, ...]
    if event == "ps" and state == "f" and not codes:
        # The players send the error report (e=e, with the codes) right after the fatal
        # state, in a request of its own: that report is the view's failure, so the
        # failure's family does not depend on which of the two requests arrives first.
        kinds = ()
    elif event == "ps":
        kinds = _STATE_EVENTS.get(state or "", ())
    elif event == "t":
        kinds = ("heartbeat",) if state == "p" else ()
    elif event == "bc":
        kinds = ("quality_change",)
    elif event == "e":
        kinds = ("error",)
    else:
        kinds = ()
    if not kinds:
        return []

    cid = _str(record, "cid") or ""
    sn = _int(record, "sn")
    # Retried records are byte-identical, so without sn the record text identifies them.
    base_id = f"cmcd:{_digest(sid, str(sn) if sn is not None else text)[:40]}"
    bitrate_kbps = _video_kbps(record, "pb") or _video_kbps(record, "br")
    envelope: dict[str, Any] = {
        "event_time": ts,
        "org_id": context.org_id,
        "player_id": "cmcd",
        "view_id": view_id(context.org_id, sid, cid),
        "session_id": sid[:128],
        # CMCD has no viewer; a session is the closest stable id (hashed: sids may be
        # chosen by the page).
        "viewer_id": _digest("viewer", context.org_id, sid),
        "env": context.env,
        "app_name": context.app_name,
        "player": {"name": context.player},
        "video": {"id": cid or None, "stream_type": _stream_type(record)},
        "cmcd": _cmcd_object(record),
    }
    pt = _int(record, "pt")
    if pt is not None and pt >= 0 and _str(record, "st") != "l":
        envelope["playback_time"] = pt
    out = []
    for index, kind in enumerate(kinds):
        data: dict[str, Any] = {}
        if kind == "playing" and _int(record, "msd") is not None:
            data["video_startup_time"] = _int(record, "msd")
        if kind in ("playing", "heartbeat", "stall_start") and bitrate_kbps is not None:
            data["bitrate"] = bitrate_kbps * 1000
        if kind == "quality_change" and bitrate_kbps is not None:
            data["new_bitrate"] = bitrate_kbps * 1000
        if kind == "view_end":
            data["reason"] = "quit"
        if kind == "heartbeat" and _int(record, "dfa") is not None:
            data["dropped_frames"] = _int(record, "dfa")
        if kind == "error":
            data["error_family"] = error_family(codes, context.player)
            data["error_code"] = codes[0][:128] if codes else None
            data["fatal"] = state in _FATAL_ERROR_STATES
        out.append(
            {
                **envelope,
                "event_id": base_id if len(kinds) == 1 else f"{base_id}:{index}",
                "event_type": kind,
                "data": data or None,
            }
        )
    return out


def _stream_type(record: Mapping[str, Any]) -> str | None:
    st = _str(record, "st")
    return {"v": "vod", "l": "live", "ll": "live"}.get(st or "")


def _cmcd_object(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record for the event's ``cmcd`` field: every key (the ones our schema does not
    name are kept in ``extra_json``), v2 lists flattened where the schema holds one value."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key in _SCALAR_KEYS:
            out[key] = _video_kbps(record, key)
        elif key == "nor":  # a string in v1, a list of relative URLs in v2
            out[key] = ",".join(_strings(record, key))[:256] or None
        elif isinstance(value, list):
            out[key] = [v for v, _ in value]
        else:
            out[key] = value
    return out
