"""Per-view QoE definitions against hand-computed ground truth (reference/qoe-metrics.md)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from ingest.validation import validate_event
from processors import scores
from processors.dims import DimensionCaps
from processors.step import Step, on_close, on_event, on_purge
from processors.view import State
from schemas import player_event_codec, player_event_reader

T0 = 1_795_000_000_000
LABELS = DimensionCaps().labels


def ev(
    kind: str, t: int, view_id: str = "v1", event_id: str | None = None, **data: Any
) -> dict[str, Any]:
    """The event as the processor sees it: validated by the collector, through Avro."""
    raw = {
        "event_id": event_id,
        "event_type": kind,
        "event_time": T0 + t,
        "received_time": T0 + t,
        "org_id": "org",
        "player_id": "p",
        "view_id": view_id,
        "session_id": "s",
        "viewer_id": "x",
        "env": "prod",
        "device": {"category": "desktop"},
        "data": data or None,
    }
    record = validate_event(raw, now_ms=T0 + t, org_id=None)
    assert isinstance(record, dict), record
    return player_event_reader().decode(player_event_codec().encode(record))


class Run:
    """Feeds events through step.on_event like the agent does, tracking one aggregate."""

    def __init__(self) -> None:
        self.view: State | None = None
        self.agg: dict[str, Any] = {"offsets": {}, "c": {}, "h": {}}
        self.offset = 0
        self.steps: list[Step] = []

    def send(self, event: dict[str, Any]) -> Step:
        step = on_event(
            self.view, self.agg["offsets"].get("raw", -1), event, self.offset, 0, LABELS
        )
        self._carry_out(step, "raw")
        self.offset += 1
        return step

    def timeout(self, now_t: int, timeout_ms: float = 60_000) -> Step:
        step = on_close(
            self.view, self.agg["offsets"].get("ctl", -1), self.offset, T0 + now_t, timeout_ms
        )
        self._carry_out(step, "ctl")
        self.offset += 1
        return step

    def _carry_out(self, step: Step, tag: str) -> None:
        from processors.aggregates import apply_once

        self.steps.append(step)
        if step.view is not None:
            self.view = step.view
        if step.deltas:
            apply_once(self.agg, tag, self.offset, step.deltas)

    @property
    def summary(self) -> dict[str, Any]:
        summaries = [s.summary for s in self.steps if s.summary is not None]
        assert len(summaries) == 1
        return summaries[0]

    def counter(self, key: str) -> float:
        live = (self.view or {}).get("live", {}).get("c", {})
        return self.agg["c"].get(key, 0) + live.get(key, 0)

    def observations(self, key: str) -> list[float]:
        return self.agg["h"].get(key, {"count": 0})["count"]


def test_normal_play_with_pause() -> None:
    run = Run()
    run.send(ev("viewstart", 0))
    run.send(ev("playerready", 300, player_startup_time=250.0, page_load_time=900.0))
    run.send(ev("playing", 1500, bitrate=2_000_000, resolution={"width": 1280, "height": 720}))
    run.send(ev("heartbeat", 11_500))
    run.send(ev("heartbeat", 21_500))
    run.send(ev("pause", 25_000))
    run.send(ev("playing", 35_000))  # resume after 10 s of pause: not a startup
    run.send(ev("heartbeat", 45_000))
    run.send(ev("ended", 50_000))
    s = run.summary
    assert s["outcome"] == "played"
    assert s["end_reason"] == "ended"
    assert s["video_startup_time_ms"] == 1500
    assert s["player_startup_time_ms"] == 250.0
    assert s["page_load_time_ms"] == 900.0
    # watch: 1.5 s startup + 23.5 s playing + (pause excluded) + 15 s playing
    assert s["watch_time_ms"] == 40_000
    assert s["playing_time_ms"] == 38_500
    assert s["rebuffer_count"] == 0
    assert s["rebuffer_ratio"] == 0
    assert s["completion_ratio"] == 1.0
    assert s["completed"]
    assert s["average_bitrate_bps"] == 2_000_000
    assert s["score_startup"] == pytest.approx(100 * 8 / 9.5)
    assert s["score_playback_success"] == 100
    assert s["score_smoothness"] == 100
    # 720 lines on the assumed 1080-line display: upscale 0.5 all the time.
    assert s["score_video_quality"] == pytest.approx(100 * math.exp(-0.33 * 0.5))
    assert run.counter("views_started") == 1
    assert run.counter("views_ended|played") == 1
    assert run.counter("views_completed") == 1
    assert run.counter("events|heartbeat") == 3
    assert run.counter("watch_time_seconds") == 40.0
    assert run.counter("playing_time_seconds") == 38.5
    assert run.view is not None
    assert run.view["live"] == {}


def test_startup_stall_is_not_rebuffering_but_a_mid_play_stall_is() -> None:
    run = Run()
    run.send(ev("viewstart", 0))
    run.send(ev("stall_start", 200))
    run.send(ev("stall_end", 900))
    run.send(ev("playing", 1000))
    run.send(ev("heartbeat", 11_000))
    run.send(ev("stall_start", 12_000))
    run.send(ev("stall_start", 12_500))  # the SDK repeats waiting: one stall
    run.send(ev("stall_end", 14_000))
    run.send(ev("ended", 20_000))
    s = run.summary
    assert s["video_startup_time_ms"] == 1000
    assert s["rebuffer_count"] == 1
    assert s["rebuffer_duration_ms"] == 2000
    assert s["watch_time_ms"] == 20_000
    assert s["playing_time_ms"] == 17_000
    assert s["rebuffer_ratio"] == pytest.approx(0.1)
    assert run.counter("rebuffer_events") == 1
    assert run.counter("rebuffer_time_seconds") == 2.0
    assert s["score_smoothness"] == pytest.approx(
        (100 / math.sqrt(1 + 0.25) + 100 * math.exp(-1.0)) / 2
    )


def test_seek_waits_are_not_rebuffering() -> None:
    run = Run()
    run.send(ev("viewstart", 0))
    run.send(ev("playing", 500))
    run.send(ev("seek", 5000, **{"from": 4000.0, "to": 60_000.0, "seek_latency": 300.0}))
    run.send(ev("stall_start", 5500))  # within the seek window
    run.send(ev("stall_end", 6500))
    run.send(ev("stall_start", 8000))  # open when the seek arrives: a seek wait too
    run.send(ev("seek", 8100, seek_latency=450.0))
    run.send(ev("stall_end", 8600))
    run.send(ev("ended", 10_000))
    s = run.summary
    assert s["rebuffer_count"] == 0
    assert s["seek_count"] == 2
    assert s["seek_wait_ms"] == 1000 + 600
    assert run.counter("seeks") == 2
    assert run.counter("rebuffer_events") == 0
    assert run.observations("seek_latency_seconds") == 2
    assert run.agg["h"]["seek_latency_seconds"]["sum"] == pytest.approx(0.75)


def test_bitrate_ladder_is_time_weighted_and_switches_counted() -> None:
    run = Run()
    run.send(ev("viewstart", 0))
    run.send(ev("playing", 1000, bitrate=1_000_000))
    # The qualitychange payload four adapters send (normalised by the collector).
    run.send(ev("quality_change", 61_000, bitrate=2_000_000))
    run.send(ev("quality_change", 121_000, previous_bitrate=2_000_000, new_bitrate=1_500_000))
    run.send(ev("ended", 181_000))
    s = run.summary
    assert s["average_bitrate_bps"] == pytest.approx(1_500_000)
    assert (s["upshift_count"], s["downshift_count"]) == (1, 1)
    assert run.counter("bitrate_switches|up") == 1
    assert run.counter("bitrate_switches|down") == 1


def test_failure_before_start() -> None:
    run = Run()
    run.send(ev("viewstart", 0))
    run.send(ev("error", 3000, error_family="network", error_code="2"))  # fatal unless said not
    run.send(ev("heartbeat", 4000))  # after the end: late
    s = run.summary
    assert s["outcome"] == "failed"
    assert s["failed_before_start"]
    assert s["failed"]
    assert not s["exited_before_start"]
    assert s["score_playback_success"] == 0
    assert s["video_startup_time_ms"] is None
    assert run.counter("playback_failures|network|startup") == 1
    assert run.counter("views_ended|failed") == 1
    assert run.counter("late_events") == 1
    assert run.steps[-1].kind == "late"
    assert run.steps[1].fatal_error is not None


def test_mid_play_failure_business_exception_and_non_fatal_errors() -> None:
    run = Run()
    run.send(ev("viewstart", 0))
    run.send(ev("playing", 800))
    run.send(ev("error", 2000, error_family="network", fatal=False))
    run.send(ev("error", 3000, error_family="decoder", error_code="3"))
    assert run.summary["outcome"] == "failed"
    assert run.counter("playback_failures|decoder|playback") == 1
    assert run.counter("playback_errors|network") == 1

    business = Run()
    business.send(ev("viewstart", 0, view_id="v2"))
    business.send(ev("error", 500, view_id="v2", error_family="business", error_code="geo"))
    assert business.summary["outcome"] == "business_exception"
    assert business.summary["failed"] is False
    assert business.counter("business_exceptions|startup") == 1
    assert business.counter("playback_failures|business|startup") == 0


def test_exit_before_video_start_by_timeout() -> None:
    run = Run()
    run.send(ev("viewstart", 0))
    run.send(ev("playerready", 300))
    assert run.timeout(now_t=30_000).kind == "ignored"  # not idle long enough
    assert run.timeout(now_t=60_300).kind == "closed"
    s = run.summary
    assert s["outcome"] == "exited_before_start"
    assert s["end_reason"] == "timeout"
    assert s["watch_time_ms"] == 300
    assert s["score_playback_success"] is None  # under 1 s: accidental start, no score
    assert run.counter("views_ended|exited_before_start") == 1
    assert run.counter("watch_time_seconds") == 0  # only views that started


def test_quartiles_and_out_of_order_events() -> None:
    run = Run()
    run.send(ev("viewstart", 0))
    run.send(ev("playing", 1000))
    run.send(ev("heartbeat", 11_000))
    run.send(ev("quartile", 9_000, quartile=25))  # arrives after a later event
    run.send(ev("quartile", 21_000, quartile=50))
    run.send(ev("pause", 21_000))
    run.timeout(now_t=200_000)
    s = run.summary
    assert s["max_quartile"] == 50
    assert s["completion_ratio"] == 0.5
    assert not s["completed"]
    assert s["playing_time_ms"] == 20_000  # time never runs backwards


def test_duplicate_event_ids_are_dropped_and_counted() -> None:
    run = Run()
    run.send(ev("viewstart", 0, event_id="a"))
    run.send(ev("playing", 1000, event_id="b"))
    assert run.send(ev("playing", 1000, event_id="b")).kind == "duplicate"
    run.send(ev("ended", 5000, event_id="c"))
    assert run.counter("duplicate_events") == 1
    assert run.counter("events|playing") == 1


def test_replay_after_crash_counts_each_message_once() -> None:
    """View write durable, aggregate write lost: the replay applies the recorded deltas."""
    run = Run()
    run.send(ev("viewstart", 0))
    run.send(ev("playing", 1000))
    durable_agg = {"offsets": dict(run.agg["offsets"]), "c": dict(run.agg["c"]), "h": {}}
    closing = run.send(ev("ended", 5000))
    assert closing.kind == "closed"
    expected = dict(run.agg["c"])
    # Crash: the view (with its pending deltas) survived, the aggregate did not.
    run.agg = durable_agg
    run.offset -= 1
    replay = run.send(ev("ended", 5000))
    assert replay.kind == "replayed"
    assert run.agg["c"] == expected
    # Replaying again (aggregate now durable too) changes nothing.
    run.offset -= 1
    run.send(ev("ended", 5000))
    assert run.agg["c"] == expected


def test_replaying_the_closing_message_publishes_the_same_summary_again() -> None:
    """The summary may have died with the crash: the replay publishes it again, unchanged,
    even after late events were applied to the closed view."""
    run = Run()
    run.send(ev("viewstart", 0))
    run.send(ev("playing", 1000))
    closing = run.send(ev("error", 3000, error_family="network", error_code="2"))
    assert closing.kind == "closed"
    assert closing.summary is not None
    assert run.send(ev("playing", 4000)).kind == "late"  # durable before the crash, too
    run.offset -= 2
    replay = run.send(ev("error", 3000, error_family="network", error_code="2"))
    assert replay.kind == "replayed"
    assert replay.summary == closing.summary
    assert replay.fatal_error is not None
    assert replay.fatal_error["event_type"] == "error"
    assert replay.deltas is None  # the late event came after it: nothing to re-apply
    # A replayed message that did not close the view publishes nothing.
    late = run.send(ev("playing", 4000))
    assert late.kind == "replayed"
    assert late.summary is None
    assert late.fatal_error is None


def test_replaying_a_timeout_close_publishes_the_same_summary_again() -> None:
    run = Run()
    run.send(ev("viewstart", 0))
    run.send(ev("playing", 1000))
    closing = run.timeout(120_000)
    assert closing.kind == "closed"
    assert closing.summary is not None
    run.offset -= 1
    replay = run.timeout(999_000)
    assert replay.kind == "replayed"
    assert replay.summary == closing.summary


def test_purge_forgets_only_old_ended_views() -> None:
    run = Run()
    run.send(ev("viewstart", 0))
    run.send(ev("ended", 1000))
    assert on_purge(run.view, T0 + 10_000, retention_ms=60_000).kind == "ignored"
    assert on_purge(run.view, T0 + 61_000, retention_ms=60_000).delete


@pytest.mark.parametrize(("seconds", "expected"), [(0.4, 95.24), (2, 80), (8, 50), (20, 28.57)])
def test_startup_score_matches_published_examples(seconds: float, expected: float) -> None:
    assert scores.startup(seconds) == pytest.approx(expected, abs=0.01)


def test_smoothness_and_quality_scores_match_published_examples() -> None:
    # 20-minute view with four 15 s stalls: count term 44.7, ratio term 60.7.
    assert scores.smoothness(4, 60 / 1200) == pytest.approx((44.72 + 60.65) / 2, abs=0.01)
    # 50% upscale throughout gives 85 (84.8).
    assert scores.video_quality(0.5, 0.5) == pytest.approx(84.8, abs=0.05)
    assert scores.overall(100.0, {"smoothness": 100.0, "startup": 50.0, "video_quality": None}) == (
        pytest.approx((0.4 * 100 + 0.35 * 50) / 0.75)
    )
    assert scores.overall(0.0, {"smoothness": 90.0, "startup": 90.0, "video_quality": 90.0}) == 0
