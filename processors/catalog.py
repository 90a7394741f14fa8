"""Every metric the processor publishes: names, extra labels, units and buckets.

Internal delta keys are ``name|value|value`` (values of the extra labels in order); the
exporter turns them into Prometheus series. Counters end in ``_total``; durations are in
seconds, ratios 0-1, bitrates bits per second (Prometheus conventions). All carry the view
dimensions of ``processors.dims.LABELS`` plus ``partition`` (see README, "Counters that
survive restarts").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()  # histograms only, without +Inf


_STARTUP_BUCKETS: Final = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0)

COUNTERS: Final[dict[str, Metric]] = {
    m.name.removeprefix("openqoe_").removesuffix("_total"): m
    for m in (
        Metric("openqoe_events_total", "Player events applied to views, by type.", ("event_type",)),
        Metric("openqoe_views_started_total", "Views (play attempts) started."),
        Metric(
            "openqoe_views_ended_total",
            "Views ended, by outcome: played, failed, exited_before_start, business_exception.",
            ("outcome",),
        ),
        Metric("openqoe_views_completed_total", "Views that reached the end of the content."),
        Metric(
            "openqoe_playback_failures_total",
            "Views ended by a fatal, non-business error, by family and stage (startup, playback).",
            ("error_family", "stage"),
        ),
        Metric(
            "openqoe_business_exceptions_total",
            "Views ended by a business-rule error (e.g. entitlement), by stage.",
            ("stage",),
        ),
        Metric(
            "openqoe_playback_errors_total",
            "Non-fatal errors reported by players (fatal=false), by family.",
            ("error_family",),
        ),
        Metric(
            "openqoe_rebuffer_events_total", "Rebuffering stalls (startup and seek waits excluded)."
        ),
        Metric("openqoe_seeks_total", "Seeks."),
        Metric(
            "openqoe_bitrate_switches_total", "Rendition switches, by direction.", ("direction",)
        ),
        Metric(
            "openqoe_watch_time_seconds_total",
            "Watch time of ended views that started (startup, playing, rebuffering, seeking).",
        ),
        Metric("openqoe_playing_time_seconds_total", "Playing time of ended views."),
        Metric(
            "openqoe_rebuffer_time_seconds_total",
            "Rebuffering time of ended views that started.",
        ),
        Metric("openqoe_late_events_total", "Events that arrived after their view had ended."),
        Metric(
            "openqoe_duplicate_events_total",
            "Events dropped as duplicates (same event_id within a view).",
        ),
    )
}

HISTOGRAMS: Final[dict[str, Metric]] = {
    m.name.removeprefix("openqoe_"): m
    for m in (
        Metric(
            "openqoe_video_startup_seconds",
            "Video startup time per view: play request to first frame.",
            buckets=_STARTUP_BUCKETS,
        ),
        Metric(
            "openqoe_player_startup_seconds",
            "Player startup time per view, as reported by the player.",
            buckets=_STARTUP_BUCKETS,
        ),
        Metric(
            "openqoe_page_load_seconds",
            "Page load time per view, as reported by the player.",
            buckets=_STARTUP_BUCKETS,
        ),
        Metric(
            "openqoe_seek_latency_seconds",
            "Seek latency per seek, as reported by the player.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0),
        ),
        Metric(
            "openqoe_view_watch_time_seconds",
            "Watch time per ended view.",
            buckets=(10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0),
        ),
        Metric(
            "openqoe_view_rebuffer_duration_seconds",
            "Rebuffering time per ended view that started.",
            buckets=(0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0),
        ),
        Metric(
            "openqoe_view_rebuffers",
            "Rebuffering stalls per ended view that started.",
            buckets=(0.0, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0),
        ),
        Metric(
            "openqoe_view_rebuffer_ratio",
            "Rebuffer time / watch time per ended view that started.",
            buckets=(0.0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5),
        ),
        Metric(
            "openqoe_view_completion_ratio",
            "Share of the content reached per ended view that started (quartiles, 1 = ended).",
            buckets=(0.0, 0.25, 0.5, 0.75, 1.0),
        ),
        Metric(
            "openqoe_view_average_bitrate_bps",
            "Playing-time-weighted average rendition bitrate per ended view.",
            buckets=(250e3, 500e3, 1e6, 2e6, 3e6, 5e6, 8e6, 12e6, 20e6),
        ),
        Metric(
            "openqoe_view_score",
            "Experience sub-scores per ended view (0-100), by component.",
            ("component",),
            buckets=(10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 95.0, 100.0),
        ),
    )
}

GAUGES: Final[dict[str, Metric]] = {
    "concurrent_viewers": Metric(
        "openqoe_concurrent_viewers",
        "Views playing, starting or rebuffering (not paused) with an event in the last two "
        "heartbeat intervals.",
    ),
    "active_views": Metric("openqoe_active_views", "Views not yet ended."),
}


def split_key(key: str) -> tuple[str, list[str]]:
    name, *values = key.split("|")
    return name, values
