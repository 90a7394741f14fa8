"""The view: one play attempt, from play request to end (reference/qoe-metrics.md §1.1, §3.1).

Pure functions over a plain-dict view state, driven by event times only, so that the
same events give the same result wherever and whenever they are processed.

Definitions (each cites reference/qoe-metrics.md):

- **View** (§1.1, §7): starts with its first event (the play request, ``viewstart``), ends
  on ``ended``, a fatal error, the SDK's explicit ``view_end`` (page closed, player
  destroyed, new source: end reason ``exited``), or after ``timeout`` without events (§7
  recommends 60 min).
- **Video startup time** (§1.2 "Video Startup Time", CTA-2066 ``initialStartupTime``): play
  request (``viewstart`` event time) to first frame (first ``playing``). Without a
  ``viewstart`` the player's own ``video_startup_time`` is used.
- **Watch time** (§1.1, CTA-2066 "Watched Time"): time spent watching or trying to watch:
  startup, playing, rebuffering and seek waits; pauses excluded.
- **Playing time** (§1.1): time in the playing state only.
- **Rebuffering** (§0, §1.2): stalls after the first frame that are not seek waits. A stall
  before the first frame is startup; a stall that is open when a ``seek`` arrives, or that
  starts within ``SEEK_STALL_WINDOW_MS`` after one, is a seek wait.
- **Rebuffer ratio** (§1.2 "Rebuffer Percentage"): rebuffer time / watch time, a ratio.
- **Playback failure** (§1.2): a fatal error that is not a business exception; **failure
  before start** (§1.2 "Video Startup Failure") when no frame was shown yet. Business
  exceptions (``error_family`` = ``business``) are counted apart.
- **Exit before video start** (§1.2 EBVS): the view ended without a first frame and
  without a fatal error or business exception.
- **Time-weighted average bitrate** (§1.2 "Weighted Average Bitrate"): playing-time-weighted
  mean of the rendition bitrates.
- **Quartiles and completion** (§1.2 engagement): the highest quartile reached; completion is
  that quartile as a ratio, or 1 after ``ended``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from processors import scores

SEEK_STALL_WINDOW_MS: Final = 1000
MAX_SEEK_LATENCY_MS: Final = 60_000
MAX_STARTUP_MS: Final = 3_600_000
RECENT_IDS: Final = 32

State = dict[str, Any]
Deltas = dict[str, Any]  # {"c": {counter: n}, "h": {histogram: [observations]}}


def _add(deltas: Deltas, counter: str, n: float = 1) -> None:
    counters = deltas.setdefault("c", {})
    counters[counter] = counters.get(counter, 0) + n


def _observe(deltas: Deltas, histogram: str, value: float) -> None:
    deltas.setdefault("h", {}).setdefault(histogram, []).append(value)


def merge_deltas(into: Deltas, other: Mapping[str, Any]) -> None:
    for name, n in other.get("c", {}).items():
        _add(into, name, n)
    for name, values in other.get("h", {}).items():
        into.setdefault("h", {}).setdefault(name, []).extend(values)


def new_view(event: Mapping[str, Any], labels: dict[str, str], partition: int) -> State:
    """A view opened by its first event."""
    t = int(event["event_time"])
    video = event.get("video") or {}
    player = event.get("player") or {}
    return {
        "view_id": event["view_id"],
        "partition": partition,
        "labels": labels,
        "org_id": event["org_id"],
        "session_id": event["session_id"],
        "viewer_id": event["viewer_id"],
        "player_id": event["player_id"],
        "video_id": video.get("id"),
        "player_name": player.get("name"),
        "first_ms": t,
        "last_ms": t,
        "last_received_ms": int(event["received_time"]),
        "request_ms": None,
        "state": "loading",
        "clock_ms": t,
        "started": False,
        "startup_ms": None,
        "player_startup_ms": None,
        "page_load_ms": None,
        "watch_ms": 0.0,
        "playing_ms": 0.0,
        "rebuffer_ms": 0.0,
        "rebuffer_count": 0,
        "seek_wait_ms": 0.0,
        "seek_count": 0,
        "last_seek_ms": None,
        "stall": None,  # {"since": ms, "kind": "startup"|"rebuffer"|"seek"}
        "bitrate": None,
        "bitrate_weighted": 0.0,
        "bitrate_ms": 0.0,
        "upshifts": 0,
        "downshifts": 0,
        "height": None,
        "width": None,
        "upscale_weighted": 0.0,
        "upscale_ms": 0.0,
        "upscale_max": 0.0,
        "dropped_frames": None,
        "quartile": 0,
        "completion": 0.0,
        "failed": False,
        "business": False,
        "error_family": None,
        "error_code": None,
        "failed_before_start": False,
        "closed": False,
        "close_reason": None,
        "closed_by": None,  # [topic, offset] of the message that closed the view
        "recent_ids": b"",  # processors.step.event_id_hash of the last RECENT_IDS events
        "live": {},
        "pending": {},
        "offsets": {},
        "last_msg": None,
    }


# --- time accounting --------------------------------------------------------------------


def _advance(view: State, t: int) -> None:
    """Account the time from the view's clock to ``t`` to the current state."""
    dt = t - view["clock_ms"]
    if dt <= 0:
        return  # out-of-order events never make time run backwards
    state = view["state"]
    if state in ("loading", "playing", "buffering"):
        view["watch_ms"] += dt
    if state == "playing":
        view["playing_ms"] += dt
        if view["bitrate"] is not None:
            view["bitrate_weighted"] += view["bitrate"] * dt
            view["bitrate_ms"] += dt
        if view["height"]:
            view["upscale_weighted"] += scores.upscale_ratio(view["height"]) * dt
            view["upscale_ms"] += dt
    view["clock_ms"] = t


def _end_stall(view: State, t: int, deltas: Deltas, reported_ms: float | None = None) -> None:
    stall = view["stall"]
    if stall is None:
        return
    duration = t - stall["since"]
    if duration <= 0 and reported_ms is not None:
        duration = reported_ms
    duration = max(0.0, float(duration))
    if stall["kind"] == "rebuffer":
        view["rebuffer_ms"] += duration
        view["rebuffer_count"] += 1
        _add(deltas, "rebuffer_events")
    elif stall["kind"] == "seek":
        view["seek_wait_ms"] += duration
    view["stall"] = None
    view["state"] = "playing" if view["started"] else "loading"


def _start(view: State, t: int, data: Mapping[str, Any]) -> None:
    view["started"] = True
    startup = None
    if view["request_ms"] is not None:
        startup = t - view["request_ms"]
    elif data.get("video_startup_time") is not None:
        startup = data["video_startup_time"]
    if startup is not None and 0 <= startup <= MAX_STARTUP_MS:
        view["startup_ms"] = float(startup)


def _set_rendition(view: State, data: Mapping[str, Any], bitrate: float | None) -> None:
    if bitrate is not None:
        view["bitrate"] = bitrate
    resolution = data.get("new_resolution") or data.get("resolution")
    if resolution:
        view["width"], view["height"] = resolution["width"], resolution["height"]
        view["upscale_max"] = max(view["upscale_max"], scores.upscale_ratio(view["height"]))


# --- events -----------------------------------------------------------------------------


def apply_event(view: State, event: Mapping[str, Any], deltas: Deltas) -> str | None:
    """Apply one event to an open view. Returns a close reason when the event ends it.

    Live counter contributions are added to ``deltas``.
    """
    t = int(event["event_time"])
    kind = event["event_type"]
    data = event.get("data") or {}
    _add(deltas, f"events|{kind}")
    _advance(view, t)
    view["last_ms"] = max(view["last_ms"], t)
    view["last_received_ms"] = max(view["last_received_ms"], int(event["received_time"]))

    if kind == "viewstart":
        if view["request_ms"] is None and not view["started"]:
            view["request_ms"] = t
    elif kind == "playerready":
        if data.get("player_startup_time") is not None:
            view["player_startup_ms"] = data["player_startup_time"]
        if data.get("page_load_time") is not None:
            view["page_load_ms"] = data["page_load_time"]
    elif kind == "playing":
        if view["state"] == "buffering":
            _end_stall(view, t, deltas)
        if not view["started"]:
            _start(view, t, data)
        view["state"] = "playing"
        _set_rendition(view, data, data.get("bitrate"))
    elif kind == "heartbeat":
        # The SDK keeps sending (slower) heartbeats while paused, so a long pause is not
        # mistaken for an abandoned view; those must not resume the playing clock.
        if data.get("player_state") == "paused":
            if view["state"] == "playing":
                view["state"] = "paused"
        else:
            if not view["started"]:
                _start(view, t, data)
            if view["state"] in ("paused", "loading"):
                view["state"] = "playing"
        if data.get("bitrate") is not None:
            view["bitrate"] = data["bitrate"]
        if data.get("dropped_frames") is not None:
            view["dropped_frames"] = max(view["dropped_frames"] or 0, data["dropped_frames"])
    elif kind == "pause":
        if view["state"] == "buffering":
            _end_stall(view, t, deltas)
        view["state"] = "paused"
    elif kind == "seek":
        view["seek_count"] += 1
        view["last_seek_ms"] = t
        _add(deltas, "seeks")
        latency = data.get("seek_latency")
        if latency is not None and 0 <= latency <= MAX_SEEK_LATENCY_MS:
            _observe(deltas, "seek_latency_seconds", latency / 1000.0)
        if view["stall"] is not None and view["stall"]["kind"] == "rebuffer":
            view["stall"]["kind"] = "seek"
    elif kind == "stall_start":
        if view["stall"] is None:
            if not view["started"]:
                stall_kind = "startup"
            elif (
                view["last_seek_ms"] is not None
                and t - view["last_seek_ms"] <= SEEK_STALL_WINDOW_MS
            ):
                stall_kind = "seek"
            else:
                stall_kind = "rebuffer"
            view["stall"] = {"since": t, "kind": stall_kind}
            view["state"] = "buffering"
        if data.get("bitrate") is not None:
            view["bitrate"] = data["bitrate"]
    elif kind == "stall_end":
        _end_stall(view, t, deltas, data.get("stall_duration"))
    elif kind == "quality_change":
        # Decoded events carry every field; absent ones are None.
        new = data.get("new_bitrate")
        if new is None:
            new = data.get("bitrate")
        old = view["bitrate"] if view["bitrate"] is not None else data.get("previous_bitrate")
        if new is not None and old is not None and new != old:
            up = new > old
            view["upshifts" if up else "downshifts"] += 1
            _add(deltas, "bitrate_switches|up" if up else "bitrate_switches|down")
        _set_rendition(view, data, new)
    elif kind == "quartile":
        quartile = data.get("quartile") or 0
        if quartile > view["quartile"]:
            view["quartile"] = quartile
            view["completion"] = max(view["completion"], quartile / 100.0)
    elif kind == "ended":
        if data.get("completion_rate") is not None:
            view["completion"] = max(view["completion"], data["completion_rate"])
        view["completion"] = max(view["completion"], 1.0) if view["started"] else view["completion"]
        return "ended"
    elif kind == "view_end":
        return "exited"
    elif kind == "error":
        family = data.get("error_family") or "unknown"
        if data.get("fatal") is False:
            _add(deltas, f"playback_errors|{family}")
            return None
        view["error_family"] = family
        view["error_code"] = data.get("error_code")
        if family == "business":
            view["business"] = True
            return "business_exception"
        view["failed"] = True
        view["failed_before_start"] = not view["started"]
        return "failed"
    return None


# --- close ------------------------------------------------------------------------------


def outcome(view: State) -> str:
    if view["failed"]:
        return "failed"
    if view["business"]:
        return "business_exception"
    if not view["started"]:
        return "exited_before_start"
    return "played"


def close(view: State, reason: str, deltas: Deltas) -> dict[str, Any]:
    """End the view at its last event; add its per-view facts to ``deltas``.

    Returns the view summary (the ``qoe.views`` record, see ``schemas/view_summary.avsc``).
    """
    _advance(view, view["last_ms"])
    if view["stall"] is not None:  # leaving during a stall still counts the stall
        _end_stall(view, view["last_ms"], deltas)
    view["closed"] = True
    view["close_reason"] = reason
    view["state"] = "ended" if reason == "ended" else "closed"
    summary = view_summary(view)

    result = summary["outcome"]
    _add(deltas, f"views_ended|{result}")
    stage = "startup" if not view["started"] else "playback"
    if view["failed"]:
        _add(deltas, f"playback_failures|{view['error_family']}|{stage}")
    if view["business"]:
        _add(deltas, f"business_exceptions|{stage}")
    if summary["completed"]:
        _add(deltas, "views_completed")
    _add(deltas, "playing_time_seconds", view["playing_ms"] / 1000.0)
    if view["started"]:  # the rebuffer ratio's numerator and denominator (§1.2)
        _add(deltas, "watch_time_seconds", view["watch_ms"] / 1000.0)
        _add(deltas, "rebuffer_time_seconds", view["rebuffer_ms"] / 1000.0)

    _observe(deltas, "view_watch_time_seconds", view["watch_ms"] / 1000.0)
    for name, key in (
        ("video_startup_seconds", "video_startup_time_ms"),
        ("player_startup_seconds", "player_startup_time_ms"),
        ("page_load_seconds", "page_load_time_ms"),
    ):
        if summary[key] is not None:
            _observe(deltas, name, summary[key] / 1000.0)
    if view["started"]:
        _observe(deltas, "view_rebuffer_duration_seconds", view["rebuffer_ms"] / 1000.0)
        _observe(deltas, "view_rebuffers", float(view["rebuffer_count"]))
        _observe(deltas, "view_completion_ratio", summary["completion_ratio"])
        if summary["rebuffer_ratio"] is not None:
            _observe(deltas, "view_rebuffer_ratio", summary["rebuffer_ratio"])
    if summary["average_bitrate_bps"] is not None:
        _observe(deltas, "view_average_bitrate_bps", summary["average_bitrate_bps"])
    for component in ("playback_success", "startup", "smoothness", "video_quality", "overall"):
        value = summary[f"score_{component}"]
        if value is not None:
            _observe(deltas, f"view_score|{component}", value)
    return summary


def view_summary(view: State) -> dict[str, Any]:
    """Every per-view value, for ``qoe.views`` and the Loki view line."""
    watch_ms = view["watch_ms"]
    rebuffer_ratio = view["rebuffer_ms"] / watch_ms if view["started"] and watch_ms > 0 else None
    ebvs = outcome(view) == "exited_before_start"
    startup_s = view["startup_ms"] / 1000.0 if view["startup_ms"] is not None else None
    success = scores.playback_success(view["failed"], ebvs, watch_ms / 1000.0)
    sub: dict[str, float | None] = {"startup": None, "smoothness": None, "video_quality": None}
    if view["started"]:
        sub["startup"] = scores.startup(startup_s)
        sub["smoothness"] = scores.smoothness(view["rebuffer_count"], rebuffer_ratio or 0.0)
        if view["upscale_ms"] > 0:
            sub["video_quality"] = scores.video_quality(
                view["upscale_weighted"] / view["upscale_ms"], view["upscale_max"]
            )
    average_bitrate = (
        view["bitrate_weighted"] / view["bitrate_ms"] if view["bitrate_ms"] > 0 else None
    )
    return {
        "view_id": view["view_id"],
        "org_id": view["org_id"],
        "session_id": view["session_id"],
        "viewer_id": view["viewer_id"],
        "player_id": view["player_id"],
        "video_id": view["video_id"],
        "labels": dict(view["labels"]),
        "start_time": view["first_ms"],
        "end_time": view["last_ms"],
        "end_reason": view["close_reason"],
        "outcome": outcome(view),
        "video_startup_time_ms": view["startup_ms"],
        "player_startup_time_ms": view["player_startup_ms"],
        "page_load_time_ms": view["page_load_ms"],
        "watch_time_ms": watch_ms,
        "playing_time_ms": view["playing_ms"],
        "rebuffer_count": view["rebuffer_count"],
        "rebuffer_duration_ms": view["rebuffer_ms"],
        "rebuffer_ratio": rebuffer_ratio,
        "seek_count": view["seek_count"],
        "seek_wait_ms": view["seek_wait_ms"],
        "failed": view["failed"],
        "failed_before_start": view["failed_before_start"],
        "business_exception": view["business"],
        "exited_before_start": ebvs,
        "error_family": view["error_family"],
        "error_code": view["error_code"],
        "max_quartile": view["quartile"],
        "completion_ratio": min(1.0, view["completion"]),
        "completed": view["completion"] >= 1.0,
        "average_bitrate_bps": average_bitrate,
        "upshift_count": view["upshifts"],
        "downshift_count": view["downshifts"],
        "last_width": view["width"],
        "last_height": view["height"],
        "dropped_frames": view["dropped_frames"],
        "score_playback_success": success,
        "score_startup": sub["startup"],
        "score_smoothness": sub["smoothness"],
        "score_video_quality": sub["video_quality"],
        "score_overall": scores.overall(success, sub),
    }
