"""Scripted views with hand-computed ground truth (reference/qoe-metrics.md definitions).

Each view lists its events (type, ms after the view's start, fields) and the per-view
values and aggregate contributions a person computed from them. Tests send the events
through the collector, Kafka and the processor and compare.
"""

from __future__ import annotations

from typing import Any

from tests.events import event

# (event_type as the player sends it, t_ms, overrides)
Script = list[tuple[str, int, dict[str, Any]]]

VIEWS: dict[str, Script] = {
    # Normal play with a 10 s pause: startup 1.5 s, watch 40 s, playing 38.5 s, completed.
    "normal": [
        ("viewstart", 0, {}),
        ("playerready", 300, {"data": {"player_startup_time": 250.0}}),
        (
            "playing",
            1500,
            {"data": {"bitrate": 2_000_000, "resolution": {"width": 1280, "height": 720}}},
        ),
        ("heartbeat", 11_500, {"data": {"bitrate": 2_000_000}}),
        ("heartbeat", 21_500, {"data": {"bitrate": 2_000_000}}),
        ("pause", 25_000, {}),
        ("playing", 35_000, {}),
        ("heartbeat", 45_000, {}),
        ("quartile", 45_000, {"data": {"quartile": 25}}),
        ("ended", 50_000, {}),
    ],
    # A stall before the first frame (startup) and one mid-play (rebuffering, 2 s).
    "stalls": [
        ("viewstart", 0, {}),
        ("stall_start", 200, {}),
        ("stall_end", 900, {}),
        ("playing", 1000, {"data": {"bitrate": 1_000_000}}),
        ("heartbeat", 11_000, {}),
        ("stall_start", 12_000, {}),
        ("stall_end", 14_000, {}),
        ("ended", 20_000, {}),
    ],
    # A seek followed by a wait: seek wait, not rebuffering.
    "seek": [
        ("viewstart", 0, {}),
        ("playing", 500, {}),
        ("seek", 5000, {"data": {"from": 4000.0, "to": 60_000.0, "seek_latency": 300.0}}),
        ("stall_start", 5500, {}),
        ("stall_end", 6500, {}),
        ("ended", 10_000, {}),
    ],
    # Bitrate ladder: 60 s at 1, 2 and 1.5 Mbps -> 1.5 Mbps average, one up, one down.
    "ladder": [
        ("viewstart", 0, {}),
        ("playing", 2500, {"data": {"bitrate": 1_000_000}}),
        ("qualitychange", 62_500, {"data": {"bitrate": 2_000_000}}),
        (
            "quality_change",
            122_500,
            {"data": {"previous_bitrate": 2_000_000, "new_bitrate": 1_500_000}},
        ),
        ("ended", 182_500, {}),
    ],
    # Fatal network error before the first frame; a heartbeat after it is late.
    "startup_failure": [
        ("viewstart", 0, {}),
        ("error", 3000, {"data": {"error_family": "network", "error_code": "2", "fatal": True}}),
        ("heartbeat", 4000, {}),
    ],
    # Player ready, never plays, the viewer leaves: exit before video start, by timeout.
    "ebvs": [
        ("viewstart", 0, {}),
        ("playerready", 2000, {}),
    ],
    # Duplicates (same event_id) and an out-of-order heartbeat; ends by timeout after pause.
    "dup_ooo": [
        ("viewstart", 0, {"event_id": "d1"}),
        ("playing", 1200, {"event_id": "d2"}),
        ("playing", 1200, {"event_id": "d2"}),
        ("quartile", 9000, {"event_id": "d3", "data": {"quartile": 50}}),
        ("heartbeat", 8000, {"event_id": "d4"}),
        ("heartbeat", 8000, {"event_id": "d4"}),
        ("pause", 10_000, {"event_id": "d5"}),
    ],
    # Entitlement error: a business exception, not a playback failure.
    "business": [
        ("viewstart", 0, {}),
        ("error", 500, {"data": {"error_family": "business", "error_code": "geo"}}),
    ],
}

# Per-view values from the summaries (qoe.views), by view.
EXPECTED_VIEWS: dict[str, dict[str, Any]] = {
    "normal": {
        "outcome": "played",
        "end_reason": "ended",
        "video_startup_time_ms": 1500.0,
        "watch_time_ms": 40_000.0,
        "playing_time_ms": 38_500.0,
        "rebuffer_count": 0,
        "completed": True,
        "average_bitrate_bps": 2_000_000.0,
        "max_quartile": 25,
    },
    "stalls": {
        "outcome": "played",
        "video_startup_time_ms": 1000.0,
        "rebuffer_count": 1,
        "rebuffer_duration_ms": 2000.0,
        "watch_time_ms": 20_000.0,
        "rebuffer_ratio": 0.1,
    },
    "seek": {
        "outcome": "played",
        "video_startup_time_ms": 500.0,
        "rebuffer_count": 0,
        "seek_count": 1,
        "seek_wait_ms": 1000.0,
    },
    "ladder": {
        "outcome": "played",
        "video_startup_time_ms": 2500.0,
        "upshift_count": 1,
        "downshift_count": 1,
        "average_bitrate_bps": 1_500_000.0,
    },
    "startup_failure": {
        "outcome": "failed",
        "failed_before_start": True,
        "error_family": "network",
        "end_reason": "failed",
        "video_startup_time_ms": None,
    },
    "ebvs": {
        "outcome": "exited_before_start",
        "end_reason": "timeout",
        "exited_before_start": True,
        "watch_time_ms": 2000.0,
        "score_playback_success": 50.0,
    },
    "dup_ooo": {
        "outcome": "played",
        "end_reason": "timeout",
        "video_startup_time_ms": 1200.0,
        "max_quartile": 50,
        "completed": False,
        "playing_time_ms": 8800.0,
    },
    "business": {"outcome": "business_exception", "business_exception": True, "failed": False},
}

# Aggregate series (summed over all label sets and partitions) after all views ended.
EXPECTED_COUNTERS: dict[str, float] = {
    "sum(openqoe_views_started_total{org=~'ORG'})": 8,
    "sum(openqoe_views_ended_total{org=~'ORG'})": 8,
    "sum(openqoe_views_ended_total{org=~'ORG',outcome='played'})": 5,
    "sum(openqoe_views_ended_total{org=~'ORG',outcome='failed'})": 1,
    "sum(openqoe_views_ended_total{org=~'ORG',outcome='exited_before_start'})": 1,
    "sum(openqoe_views_ended_total{org=~'ORG',outcome='business_exception'})": 1,
    "sum(openqoe_views_completed_total{org=~'ORG'})": 4,
    "sum(openqoe_playback_failures_total{org=~'ORG',error_family='network',stage='startup'})": 1,
    "sum(openqoe_business_exceptions_total{org=~'ORG',stage='startup'})": 1,
    "sum(openqoe_rebuffer_events_total{org=~'ORG'})": 1,
    "sum(openqoe_seeks_total{org=~'ORG'})": 1,
    "sum(openqoe_bitrate_switches_total{org=~'ORG',direction='up'})": 1,
    "sum(openqoe_bitrate_switches_total{org=~'ORG',direction='down'})": 1,
    "sum(openqoe_late_events_total{org=~'ORG'})": 1,
    "sum(openqoe_duplicate_events_total{org=~'ORG'})": 2,
    "sum(openqoe_events_total{org=~'ORG',event_type='heartbeat'})": 5,
    "sum(openqoe_events_total{org=~'ORG',event_type='quality_change'})": 2,
    "sum(openqoe_rebuffer_time_seconds_total{org=~'ORG'})": 2,
    # Startup times 1.5, 1.0, 0.5, 2.5, 1.2 s.
    "sum(openqoe_video_startup_seconds_count{org=~'ORG'})": 5,
    "sum(openqoe_video_startup_seconds_sum{org=~'ORG'})": 6.7,
    "sum(openqoe_video_startup_seconds_bucket{org=~'ORG',le='0.5'})": 1,
    "sum(openqoe_video_startup_seconds_bucket{org=~'ORG',le='1.0'})": 2,
    "sum(openqoe_video_startup_seconds_bucket{org=~'ORG',le='2.0'})": 4,
    "sum(openqoe_video_startup_seconds_bucket{org=~'ORG',le='5.0'})": 5,
    "sum(openqoe_video_startup_seconds_bucket{org=~'ORG',le='+Inf'})": 5,
    "sum(openqoe_seek_latency_seconds_count{org=~'ORG'})": 1,
    "sum(openqoe_view_rebuffers_bucket{org=~'ORG',le='0.0'})": 4,
    "sum(openqoe_view_rebuffers_bucket{org=~'ORG',le='1.0'})": 5,
}


def view_events(org: str, prefix: str, start_ms: int) -> dict[str, list[dict[str, Any]]]:
    """The scripted events of every view, for organisation ``org``, starting at ``start_ms``."""
    out = {}
    for name, script in VIEWS.items():
        view_id = f"{prefix}-{name}"
        events = []
        for kind, t, overrides in script:
            fields = dict(overrides.items())
            events.append(event(kind, start_ms + t, view_id=view_id, org_id=org, **fields))
        out[view_id] = events
    return out
