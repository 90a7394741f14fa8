"""Remote-write encoding (golden bytes from reference/protocols.md §1.1), label rules,
snappy block format, retry classification, and the series we build."""

from __future__ import annotations

import struct

import pytest
import snappy

from processors.errors import RejectedError, RetryableError
from processors.remote_write import (
    HEADERS,
    InvalidSeriesError,
    Sample,
    classify_response,
    compress,
    encode_write_request,
    format_le,
    validate_labels,
)
from processors.series import build_samples
from processors.sinks import remote_write_requests

# Verified against the protobuf package and accepted by Prometheus 2.42 (reference §1.1).
GOLDEN = (
    "0a4b0a1e0a085f5f6e616d655f5f1212716f655f72656275666665725f726174696f0a080a0363646e12"
    "01610a0d0a06706c617965721203776562121009000000000000c03f1080d095ffbc31"
)


def test_golden_bytes_and_label_sorting() -> None:
    # Given out of order: the encoder sorts by label name.
    labels = {"player": "web", "cdn": "a", "__name__": "qoe_rebuffer_ratio"}
    assert encode_write_request([Sample(labels, 0.125, 1_700_000_000_000)]).hex() == GOLDEN


def decode_varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def decode_fields(data: bytes) -> list[tuple[int, bytes | int]]:
    """A minimal protobuf reader for the test: (field number, payload)."""
    out: list[tuple[int, bytes | int]] = []
    pos = 0
    while pos < len(data):
        key, pos = decode_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 2:
            length, pos = decode_varint(data, pos)
            out.append((number, data[pos : pos + length]))
            pos += length
        elif wire == 1:
            out.append((number, data[pos : pos + 8]))
            pos += 8
        else:
            value, pos = decode_varint(data, pos)
            out.append((number, value))
    return out


def test_request_round_trips_through_a_protobuf_reader_and_snappy_block() -> None:
    samples = [Sample({"__name__": "a_total", "z": "1", "b": "2"}, 3.0, 1_700_000_000_123)]
    body = compress(encode_write_request(samples))
    assert not body.startswith(b"\xff\x06\x00\x00sNaPpY")  # block, not framed
    raw = snappy.uncompress(body)
    ((field, series),) = decode_fields(raw)
    assert field == 1
    parts = decode_fields(series)  # type: ignore[arg-type]
    labels = [decode_fields(p) for n, p in parts if n == 1]  # type: ignore[arg-type]
    assert [(lbl[0][1], lbl[1][1]) for lbl in labels] == [
        (b"__name__", b"a_total"),
        (b"b", b"2"),
        (b"z", b"1"),
    ]
    (sample,) = [decode_fields(p) for n, p in parts if n == 2]  # type: ignore[arg-type]
    assert struct.unpack("<d", sample[0][1]) == (3.0,)  # type: ignore[arg-type]
    assert sample[1][1] == 1_700_000_000_123


@pytest.mark.parametrize(
    "labels",
    [
        {"cdn": "a"},
        {"__name__": "bad-name"},
        {"__name__": "ok", "bad-label": "x"},
        {"__name__": "ok", "cdn": ""},
        {"__name__": "ok", **{f"l{i}": "x" for i in range(30)}},
    ],
)
def test_invalid_series_are_refused_before_sending(labels: dict[str, str]) -> None:
    with pytest.raises(InvalidSeriesError):
        validate_labels(labels)


def test_a_series_encodes_the_same_every_time_in_any_label_order() -> None:
    """Its label fields are remembered per label set as built: the next flush's samples,
    and the same labels built in another order, give the bytes a first encoding gives."""
    labels = {"__name__": "qoe_rebuffer_ratio", "player": "web", "cdn": "a"}
    first = encode_write_request([Sample(labels, 0.125, 1_700_000_000_000)])
    assert first.hex() == GOLDEN
    again = encode_write_request([Sample(dict(labels), 0.125, 1_700_000_000_000)])
    reordered = dict(reversed(list(labels.items())))
    other_order = encode_write_request([Sample(reordered, 0.125, 1_700_000_000_000)])
    assert again == other_order == first


def test_an_invalid_series_is_refused_every_time() -> None:
    bad = {"__name__": "ok", "bad-label": "x"}
    for _ in range(2):
        with pytest.raises(InvalidSeriesError):
            encode_write_request([Sample(bad, 1.0, 1_700_000_000_000)])


def test_le_labels_use_prometheus_formatting() -> None:
    assert [format_le(b) for b in (0.5, 1, 15, 250e3, 20e6, float("inf"))] == [
        "0.5",
        "1.0",
        "15.0",
        "250000.0",
        "2e+07",
        "+Inf",
    ]


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (204, None),
        (200, None),
        (500, RetryableError),
        (503, RetryableError),
        (429, RetryableError),
        (400, RejectedError),
        (401, RejectedError),
        (404, RejectedError),
        (413, RejectedError),
    ],
)
def test_retry_rules_follow_the_spec(status: int, error: type[Exception] | None) -> None:
    if error is None:
        classify_response(status, "", None)
    else:
        with pytest.raises(error):
            classify_response(status, "body", "7")


def test_required_headers() -> None:
    assert HEADERS["Content-Encoding"] == "snappy"
    assert HEADERS["Content-Type"] == "application/x-protobuf"
    assert HEADERS["X-Prometheus-Remote-Write-Version"] == "0.1.0"
    assert HEADERS["User-Agent"].startswith("openqoe-processor/")


def histogram_agg() -> dict:
    return {
        "partition": 3,
        "labels": {"org": "o", "env": "prod"},
        "offsets": {},
        "c": {"views_started": 4, "views_ended|played": 3},
        "h": {
            "video_startup_seconds": {
                "b": [1, 0, 0, 2, 0, 0, 0, 0, 0, 0, 1],
                "sum": 100.0,
                "count": 4,
            }
        },
    }


def test_series_are_cumulative_histograms_with_inf_and_counters_plus_live_increments() -> None:
    open_view = {
        "partition": 3,
        "labels": {"org": "o", "env": "prod"},
        "state": "playing",
        "last_received_ms": 1000,
        "live": {"c": {"views_started": 1}, "h": {"seek_latency_seconds": [0.3]}},
    }
    samples = build_samples(
        [histogram_agg()], [(open_view, None)], now_ms=5000, concurrency_window_ms=20_000
    )
    by_name = {}
    for s in samples:
        by_name.setdefault(s.labels["__name__"], []).append(s)
    started = by_name["openqoe_views_started_total"]
    assert [s.value for s in started] == [5.0]
    assert started[0].labels["partition"] == "3"
    assert started[0].timestamp_ms == 5000
    buckets = {s.labels["le"]: s.value for s in by_name["openqoe_video_startup_seconds_bucket"]}
    assert buckets["0.1"] == 1
    assert buckets["1.0"] == 3
    assert buckets["60.0"] == 3
    assert buckets["+Inf"] == 4 == by_name["openqoe_video_startup_seconds_count"][0].value
    assert by_name["openqoe_seek_latency_seconds_count"][0].value == 1
    assert by_name["openqoe_concurrent_viewers"][0].value == 1
    assert by_name["openqoe_active_views"][0].value == 1
    assert by_name["openqoe_views_ended_total"][0].labels["outcome"] == "played"


def test_one_request_per_tenant_when_multi_tenant() -> None:
    samples = [Sample({"__name__": "x_total", "org": org}, 1.0, 1) for org in ("a", "b", "a")]
    requests = remote_write_requests(samples, "org")
    assert sorted((r.tenant, r.items) for r in requests) == [("a", 2), ("b", 1)]
    assert [r.tenant for r in remote_write_requests(samples, None)] == [None]


def test_series_that_appear_later_start_with_a_zero_but_restored_ones_do_not() -> None:
    from processors.series import NewSeries

    tracker = NewSeries()
    agg = histogram_agg()

    def export(now_ms: int, partitions: tuple[int, ...] = (3,)) -> list[Sample]:
        tracker.begin(partitions)
        return build_samples([agg], [], now_ms=now_ms, concurrency_window_ms=1, new_series=tracker)

    first = export(10_000)
    assert all(s.timestamp_ms == 10_000 for s in first)  # baseline after assignment: no zeros

    agg["c"]["views_ended|failed"] = 1
    agg["c"]["views_started"] = 5
    second = export(20_000)
    zeros = [s for s in second if s.timestamp_ms == 19_999]
    assert [(s.labels["__name__"], s.labels.get("outcome"), s.value) for s in zeros] == [
        ("openqoe_views_ended_total", "failed", 0.0)
    ]
    # The zero precedes the real sample of the same series in the request.
    failed = [s for s in second if s.labels.get("outcome") == "failed"]
    assert [(s.timestamp_ms, s.value) for s in failed] == [(19_999, 0.0), (20_000, 1.0)]

    agg["h"]["seek_latency_seconds"] = {"b": [1] + [0] * 9, "sum": 0.05, "count": 1}
    third = export(30_000)
    zero_names = {s.labels["__name__"] for s in third if s.timestamp_ms == 29_999}
    assert zero_names == {
        "openqoe_seek_latency_seconds_bucket",
        "openqoe_seek_latency_seconds_sum",
        "openqoe_seek_latency_seconds_count",
    }

    tracker.forget(3)  # the partition moved away and came back: its series exist downstream
    agg["c"]["seeks"] = 1
    fourth = export(40_000)
    assert all(s.timestamp_ms == 40_000 for s in fourth)


def test_a_partition_owned_while_empty_starts_its_first_series_with_a_zero() -> None:
    """An owned partition with no views at its first export is known from then on: the
    series its first views create later are new, not a restored baseline (once, CI saw a
    recorded rate of 0 because such series began at their final value)."""
    from processors.series import NewSeries

    tracker = NewSeries()
    tracker.begin([3, 4])
    assert build_samples([], [], now_ms=10_000, concurrency_window_ms=1, new_series=tracker) == []

    tracker.begin([3, 4])
    agg = {**histogram_agg(), "partition": 4}
    second = build_samples([agg], [], now_ms=20_000, concurrency_window_ms=1, new_series=tracker)
    started = [s for s in second if s.labels["__name__"] == "openqoe_views_started_total"]
    assert [(s.timestamp_ms, s.value) for s in started] == [(19_999, 0.0), (20_000, 4.0)]
