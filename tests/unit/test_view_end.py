"""The SDK's additions to the view rules: view_end, paused heartbeats, retried batches."""

from __future__ import annotations

import json
from pathlib import Path

from ingest.validation import validate_event
from processors.view import RECENT_IDS
from tests.unit.test_view import T0, Run, ev

SDK_CONFIG = Path(__file__).parents[2] / "sdk" / "src" / "config.ts"


def test_view_end_closes_a_played_view_at_once() -> None:
    run = Run()
    run.send(ev("viewstart", 0))
    run.send(ev("playing", 800))
    step = run.send(ev("view_end", 10_800, reason="unload"))
    assert step.kind == "closed"
    s = run.summary
    assert s["end_reason"] == "exited"
    assert s["outcome"] == "played"
    assert s["playing_time_ms"] == 10_000
    assert s["end_time"] == T0 + 10_800
    assert run.counter("views_ended|played") == 1


def test_view_end_before_the_first_frame_is_an_exit_before_start() -> None:
    run = Run()
    run.send(ev("viewstart", 0))
    run.send(ev("view_end", 4000, reason="destroy"))
    s = run.summary
    assert (s["end_reason"], s["outcome"], s["exited_before_start"]) == (
        "exited",
        "exited_before_start",
        True,
    )
    assert run.counter("views_ended|exited_before_start") == 1


def test_events_after_view_end_are_late_and_do_not_reopen_the_view() -> None:
    run = Run()
    run.send(ev("viewstart", 0))
    run.send(ev("playing", 500))
    run.send(ev("view_end", 2000, reason="unload"))
    assert run.send(ev("heartbeat", 3000)).kind == "late"
    assert run.counter("late_events") == 1
    assert len([s for s in run.steps if s.summary is not None]) == 1


def test_paused_heartbeats_keep_the_view_alive_without_counting_playing_time() -> None:
    run = Run()
    run.send(ev("viewstart", 0))
    run.send(ev("playing", 1000))
    run.send(ev("pause", 11_000))
    # A 5-minute pause with heartbeats every 30 s; the view timeout is 60 s of silence.
    for t in range(41_000, 311_000, 30_000):
        run.send(ev("heartbeat", t, player_state="paused", playing_time=10_000.0))
        assert run.timeout(now_t=t + 30_000).kind == "ignored"
    run.send(ev("playing", 311_000))
    run.send(ev("heartbeat", 321_000, player_state="playing"))
    run.send(ev("ended", 331_000))
    s = run.summary
    assert s["end_reason"] == "ended"
    assert s["playing_time_ms"] == 10_000 + 20_000
    assert s["watch_time_ms"] == 1000 + 10_000 + 20_000  # startup + playing, no pause


def test_a_paused_heartbeat_after_a_lost_pause_stops_the_playing_clock() -> None:
    run = Run()
    run.send(ev("viewstart", 0))
    run.send(ev("playing", 0))
    run.send(ev("heartbeat", 10_000, player_state="paused"))
    run.send(ev("heartbeat", 40_000, player_state="paused"))
    run.send(ev("view_end", 50_000, reason="unload"))
    assert run.summary["playing_time_ms"] == 10_000


def test_a_whole_retried_sdk_batch_is_dropped_as_duplicates() -> None:
    max_batch = int(
        next(
            line.split("=")[1].strip(" ;\n")
            for line in SDK_CONFIG.read_text().splitlines()
            if "MAX_BATCH_SIZE =" in line
        )
    )
    assert max_batch <= RECENT_IDS, "the SDK's largest batch must fit the de-duplication window"
    run = Run()
    run.send(ev("viewstart", 0, event_id="start"))
    run.send(ev("playing", 100, event_id="first-frame"))
    batch = [ev("heartbeat", 1000 + i, event_id=f"hb-{i}") for i in range(max_batch)]
    for event in batch:
        assert run.send(event).kind == "applied"
    # The collector answered 503 after Kafka took part of it: the SDK sends it all again.
    kinds = [run.send(event).kind for event in batch]
    assert kinds == ["duplicate"] * max_batch
    assert run.counter("events|heartbeat") == max_batch
    assert run.counter("duplicate_events") == max_batch


def test_sequence_reason_and_player_state_survive_validation_and_avro() -> None:
    raw = {
        "event_id": "e1",
        "event_type": "view_end",
        "event_time": T0,
        "sequence": 7,
        "org_id": "org",
        "player_id": "p",
        "view_id": "v",
        "session_id": "s",
        "viewer_id": "x",
        "data": {"reason": "source_change"},
    }
    decoded = ev("view_end", 0, reason="source_change")
    assert decoded["data"]["reason"] == "source_change"
    assert ev("heartbeat", 0, player_state="paused")["data"]["player_state"] == "paused"
    record = validate_event(raw, now_ms=T0, org_id=None)
    assert isinstance(record, dict)
    assert record["sequence"] == 7
    assert record["extra_json"] is None  # known fields, not leftovers
    bad = validate_event({**raw, "sequence": -1}, now_ms=T0, org_id=None)
    assert isinstance(bad, list)
    assert [(e.field, e.code) for e in bad] == [("sequence", "out_of_range")]
    assert json.loads(json.dumps(record["data"]))["reason"] == "source_change"
