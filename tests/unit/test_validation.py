"""The event contract: what is accepted, how it is normalised, and every rejection."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ingest.validation import (
    EVENT_TYPES,
    MAX_TEXT_CHARS,
    FieldError,
    TimeWindow,
    validate_event,
)
from schemas import player_event_codec
from tests.events import event, sdk_batch

NOW = 1_795_000_000_000


def ok(raw: Any, org: str | None = "org_test") -> dict[str, Any]:
    result = validate_event(raw, now_ms=NOW, org_id=org)
    assert isinstance(result, dict), result
    return result


def errors(raw: Any, org: str | None = "org_test") -> list[tuple[str, str]]:
    result = validate_event(raw, now_ms=NOW, org_id=org)
    assert isinstance(result, list), result
    assert all(isinstance(e, FieldError) for e in result)
    return [(e.field, e.code) for e in result]


def test_the_sdk_v1_example_batch_is_accepted_as_sent() -> None:
    records = [ok(raw, org="org_abc123") for raw in sdk_batch(NOW)]
    viewstart, ready, playing, heartbeat = records
    assert viewstart["event_type"] == "viewstart"
    assert viewstart["data"] == {"preroll_requested": False}
    assert viewstart["network"] is None  # the SDK always sends {}
    assert viewstart["video"]["source_url"] == "https://cdn.example.com/bbb/master.m3u8"
    assert ready["data"] == {"player_startup_time": 1834.6, "page_load_time": 1412.0}
    # "bitrate": null means unknown: dropped, not an error.
    assert playing["data"] == {
        "video_startup_time": 3788.2,
        "resolution": {"width": 1280, "height": 720},
    }
    assert playing["playback_time"] == 0.0
    assert heartbeat["data"]["buffer_length"] == 21340.2
    assert heartbeat["event_time"] == NOW
    # Every record fits the Avro schema.
    codec = player_event_codec()
    for record in records:
        assert codec.decode(codec.encode(record))["view_id"] == record["view_id"]


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_each_of_the_twelve_types_is_accepted(event_type: str) -> None:
    assert ok(event(event_type, NOW))["event_type"] == event_type


@pytest.mark.parametrize(
    ("sent", "canonical"),
    [("qualitychange", "quality_change"), ("stallstart", "stall_start"), ("stallend", "stall_end")],
)
def test_adapter_spellings_are_normalised_and_remembered(sent: str, canonical: str) -> None:
    record = ok(event(sent, NOW, data={"bitrate": 2_500_000, "framerate": "29.970"}))
    assert record["event_type"] == canonical
    assert record["event_type_sent"] == sent
    assert record["data"]["framerate"] == pytest.approx(29.97)


def test_unknown_fields_are_kept_as_json() -> None:
    raw = event(
        "heartbeat",
        NOW,
        custom_dimension="abc",
        device={"category": "tv", "hdr": True},
        data={"dropped_frames": 3, "buffer_len_ms": 1200},
    )
    record = ok(raw)
    assert json.loads(record["extra_json"]) == {
        "custom_dimension": "abc",
        "device": {"hdr": True},
    }
    assert record["device"] == {"category": "tv"}
    assert json.loads(record["data"]["extra_json"]) == {"buffer_len_ms": 1200}
    assert record["data"]["dropped_frames"] == 3


def test_old_bitrate_feeds_previous_bitrate_and_error_codes_become_strings() -> None:
    record = ok(event("quality_change", NOW, data={"old_bitrate": 1e6, "new_bitrate": 2e6}))
    assert record["data"]["previous_bitrate"] == 1e6
    err = ok(event("error", NOW, data={"error_family": "decoder", "error_code": 3, "fatal": True}))
    assert err["data"]["error_code"] == "3"
    assert err["data"]["fatal"] is True


def test_free_text_is_truncated_not_rejected() -> None:
    record = ok(event("error", NOW, data={"error_family": "source", "error_message": "x" * 5000}))
    assert len(record["data"]["error_message"]) == MAX_TEXT_CHARS


def test_completion_rate_float_noise_is_clamped_but_nonsense_is_rejected() -> None:
    assert ok(event("ended", NOW, data={"completion_rate": 1.004}))["data"]["completion_rate"] == 1
    assert errors(event("ended", NOW, data={"completion_rate": 95})) == [
        ("data.completion_rate", "out_of_range")
    ]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("not an object", [("", "wrong_type")]),
        (event("dance", NOW), [("event_type", "unknown_event_type")]),
        (event("playing", NOW, event_type=None), [("event_type", "missing")]),
        (event("playing", NOW, event_type=7), [("event_type", "wrong_type")]),
        (event("playing", NOW, event_time="yesterday"), [("event_time", "wrong_type")]),
        (event("playing", NOW, event_time=True), [("event_time", "wrong_type")]),
        (event("playing", NOW, event_time=0), [("event_time", "out_of_range")]),
        (event("playing", NOW - 24 * 3600 * 1000 - 1), [("event_time", "too_old")]),
        (event("playing", NOW + 5 * 60 * 1000 + 1), [("event_time", "in_future")]),
        (event("playing", NOW, view_id=""), [("view_id", "missing")]),
        (event("playing", NOW, session_id=None), [("session_id", "missing")]),
        (event("playing", NOW, viewer_id=42), [("viewer_id", "wrong_type")]),
        (event("playing", NOW, player_id="p" * 129), [("player_id", "too_long")]),
        (event("playing", NOW, org_id="someone_else"), [("org_id", "org_mismatch")]),
        (event("playing", NOW, playback_time=-1), [("playback_time", "out_of_range")]),
        (event("playing", NOW, event_id=""), [("event_id", "wrong_type")]),
        (event("playing", NOW, device="tv"), [("device", "wrong_type")]),
        (event("playing", NOW, os={"family": ["Linux"]}), [("os.family", "wrong_type")]),
        (event("playing", NOW, env="e" * 257), [("env", "too_long")]),
        (event("playing", NOW, data=[1]), [("data", "wrong_type")]),
        (event("playing", NOW, data={"bitrate": "fast"}), [("data.bitrate", "wrong_type")]),
        (event("playing", NOW, data={"bitrate": -5}), [("data.bitrate", "out_of_range")]),
        (
            event("playing", NOW, data={"resolution": {"width": 1.5}}),
            [("data.resolution.width", "wrong_type"), ("data.resolution.height", "missing")],
        ),
        (event("quartile", NOW, data={"quartile": 30}), [("data.quartile", "out_of_range")]),
        (event("quartile", NOW, data={}), [("data.quartile", "missing")]),
        (event("error", NOW, data={"error_code": "1"}), [("data.error_family", "missing")]),
        (
            event("heartbeat", NOW, data={"dropped_frames": 2.5}),
            [("data.dropped_frames", "wrong_type")],
        ),
        (
            event("error", NOW, data={"error_family": "x", "fatal": "yes"}),
            [("data.fatal", "wrong_type")],
        ),
    ],
)
def test_each_bad_input_class_gets_a_precise_error(
    raw: Any, expected: list[tuple[str, str]]
) -> None:
    assert errors(raw) == expected


def test_absurd_json_numbers_are_field_errors_not_crashes() -> None:
    huge = 10**400  # JSON integers are unbounded
    assert errors(event("playing", NOW, playback_time=huge)) == [("playback_time", "out_of_range")]
    assert errors(event("playing", NOW, event_time=huge)) == [("event_time", "out_of_range")]
    assert errors(event("playing", NOW, playback_time=float("inf"))) == [
        ("playback_time", "out_of_range")
    ]  # what json.loads makes of 1e400
    assert errors(event("error", NOW, data={"error_family": "x", "error_code": huge})) == [
        ("data.error_code", "wrong_type")
    ]
    assert errors(event("heartbeat", NOW, data={"dropped_frames": huge})) == [
        ("data.dropped_frames", "out_of_range")
    ]


def test_all_errors_of_one_event_are_reported_together() -> None:
    raw = {"event_type": "dance", "data": {"quartile": 30}}
    assert errors(raw) == [
        ("event_type", "unknown_event_type"),
        ("event_time", "missing"),
        ("org_id", "missing"),
        ("player_id", "missing"),
        ("view_id", "missing"),
        ("session_id", "missing"),
        ("viewer_id", "missing"),
        ("data.quartile", "out_of_range"),
    ]


def test_without_auth_any_org_is_accepted() -> None:
    assert ok(event("playing", NOW, org_id="anyone"), org=None)["org_id"] == "anyone"


def test_the_time_window_is_configurable() -> None:
    window = TimeWindow(max_age_ms=1000, max_future_ms=0)
    late = validate_event(event("playing", NOW - 1001), now_ms=NOW, org_id=None, window=window)
    assert isinstance(late, list)
    assert late[0].code == "too_old"
    assert isinstance(
        validate_event(event("playing", NOW - 1000), now_ms=NOW, org_id=None, window=window), dict
    )
