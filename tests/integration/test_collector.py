"""The collector against the real Kafka broker: round trip, every bad-input class, CORS."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from openapi_schema_validator import OAS31Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from ingest.topics import TopicsConfig
from schemas import player_event_reader, rejected_event_codec
from tests.events import event, sdk_batch
from tests.integration.conftest import OTHER_KEY, CollectorFactory, auth, consume

pytestmark = pytest.mark.kafka

OPENAPI = yaml.safe_load((Path(__file__).parents[2] / "ingest" / "openapi.yaml").read_text())


def assert_matches_openapi(path: str, status: int, body: Any) -> None:
    """The response body matches the schema the OpenAPI document declares for it."""
    operation = OPENAPI["paths"][path]["post" if path == "/v1/events" else "get"]
    schema = operation["responses"][str(status)]["content"]["application/json"]["schema"]
    registry: Registry[Any] = Registry().with_resource("", DRAFT202012.create_resource(OPENAPI))
    OAS31Validator({**schema, "components": OPENAPI["components"]}, registry=registry).validate(
        body
    )


def now_ms() -> int:
    return int(time.time() * 1000)


async def test_round_trip_sdk_batch_lands_in_kafka_field_by_field(
    make_collector: CollectorFactory, topics: TopicsConfig
) -> None:
    client = await make_collector(auth_disabled=True)
    sent = sdk_batch(now_ms())
    response = await client.post("/v1/events", json={"events": sent})
    body = await response.json()
    assert response.status == 202, body
    assert body == {"accepted": 4, "rejected": 0, "errors": []}
    assert_matches_openapi("/v1/events", 202, body)

    records = await consume(topics.kafka_bootstrap_servers, topics.raw_topic, expected=4)
    assert len(records) == 4
    decoded = sorted(
        (player_event_reader().decode(r.value) for r in records), key=lambda e: e["event_time"]
    )
    for record, raw, original in zip(records, decoded, sent, strict=True):
        assert record.key == original["view_id"].encode()
        assert raw["event_type"] == original["event_type"]
        assert raw["event_time"] == original["event_time"]
        assert raw["viewer_time"] == original["viewer_time"]
        for field in ("org_id", "player_id", "view_id", "session_id", "viewer_id", "env"):
            assert raw[field] == original[field]
        assert raw["device"]["category"] == original["device"]["category"]
        assert raw["os"] == {
            "family": original["os"]["family"],
            "version": original["os"]["version"],
        }
        assert raw["browser"]["family"] == original["browser"]["family"]
        assert raw["player"]["name"] == original["player"]["name"]
        assert raw["video"]["duration"] == original["video"]["duration"]
        assert raw["received_time"] >= raw["event_time"]
    assert decoded[2]["data"]["video_startup_time"] == 3788.2
    assert decoded[2]["data"]["resolution"] == {"width": 1280, "height": 720}
    assert decoded[2]["data"]["bitrate"] is None
    assert decoded[3]["data"]["playing_time"] == 9893.7
    assert decoded[3]["playback_time"] == 9981.4
    # One view: every event on the same partition, in order.
    assert len({r.partition for r in records}) == 1


async def test_invalid_events_go_to_dead_letters_and_valid_neighbours_land(
    make_collector: CollectorFactory, topics: TopicsConfig
) -> None:
    client = await make_collector()
    t = now_ms()
    view = "view-neighbours"
    batch = [
        event("viewstart", t, view_id=view, event_id="a"),
        event("dance", t, view_id=view),  # unknown type
        event("playing", t, view_id=view, event_id="b", data={"bitrate": 1_000_000}),
        event("playing", t - 25 * 3600 * 1000, view_id=view),  # too old
        event("quartile", t + 10 * 60 * 1000, view_id=view),  # in the future
        event("heartbeat", t, view_id=view, org_id="org_other"),  # other org
        event("heartbeat", t, view_id=view, viewer_id=None),  # missing id
        event("qualitychange", t, view_id=view, event_id="c", data={"bitrate": 2_000_000}),
        "not-an-object",
    ]
    response = await client.post("/v1/events", json={"events": batch}, headers=auth())
    body = await response.json()
    assert response.status == 207, body
    assert_matches_openapi("/v1/events", 207, body)
    assert (body["accepted"], body["rejected"]) == (3, 6)
    assert [(e["index"], e["field"], e["code"]) for e in body["errors"]] == [
        (1, "event_type", "unknown_event_type"),
        (3, "event_time", "too_old"),
        (4, "event_time", "in_future"),
        (5, "org_id", "org_mismatch"),
        (6, "viewer_id", "missing"),
        (8, "", "wrong_type"),
    ]

    raw = await consume(topics.kafka_bootstrap_servers, topics.raw_topic, expected=3)
    assert sorted(player_event_reader().decode(r.value)["event_id"] for r in raw) == ["a", "b", "c"]
    dead = await consume(topics.kafka_bootstrap_servers, topics.rejected_topic, expected=6)
    letters = sorted(
        (rejected_event_codec().decode(r.value) for r in dead), key=lambda d: d["batch_index"]
    )
    assert [d["batch_index"] for d in letters] == [1, 3, 4, 5, 6, 8]
    assert letters[0]["errors"][0]["code"] == "unknown_event_type"
    assert letters[0]["org_id"] == "org_test"
    assert json.loads(letters[0]["event_json"])["event_type"] == "dance"
    assert dead[0].key in (view.encode(), None)
    assert {r.key for r in dead} == {view.encode(), None}  # "not-an-object" has no key


async def test_a_batch_with_no_valid_event_is_400_but_still_dead_lettered(
    make_collector: CollectorFactory, topics: TopicsConfig
) -> None:
    client = await make_collector()
    response = await client.post(
        "/v1/events", json={"events": [event("dance", now_ms())]}, headers=auth()
    )
    body = await response.json()
    assert response.status == 400
    assert_matches_openapi("/v1/events", 400, body)
    assert body["accepted"] == 0
    dead = await consume(topics.kafka_bootstrap_servers, topics.rejected_topic, expected=1)
    assert len(dead) == 1


def gzip_bomb(decompressed_bytes: int) -> bytes:
    # Valid JSON prefix followed by a very long run of spaces: compresses ~1000:1.
    return gzip.compress(b'{"events": [' + b" " * decompressed_bytes + b"]}")


@pytest.mark.parametrize(
    ("name", "headers", "body", "status", "code"),
    [
        ("malformed JSON", {}, b'{"events": [', 400, "malformed_body"),
        ("NaN is not JSON", {}, b'{"events": [{"event_time": NaN}]}', 400, "malformed_body"),
        ("not UTF-8", {}, b'{"events": ["\xff"]}', 400, "malformed_body"),
        ("no events key", {}, b'{"event": []}', 400, "malformed_body"),
        ("events not a list", {}, b'{"events": {}}', 400, "malformed_body"),
        ("empty batch", {}, b'{"events": []}', 400, "malformed_body"),
        (
            "too many events",
            {},
            json.dumps({"events": [{}] * 101}).encode(),
            413,
            "too_many_events",
        ),
        ("oversize body", {}, b'{"events": ["' + b"x" * 300_000 + b'"]}', 413, "body_too_large"),
        ("gzip bomb", {"Content-Encoding": "gzip"}, gzip_bomb(50_000_000), 413, "body_too_large"),
        ("broken gzip", {"Content-Encoding": "gzip"}, b"\x1f\x8bnot gzip", 400, "malformed_body"),
        ("unknown encoding", {"Content-Encoding": "br"}, b"{}", 415, "unsupported_media_type"),
        (
            "form post",
            {"Content-Type": "application/x-www-form-urlencoded"},
            b"a=1",
            415,
            "unsupported_media_type",
        ),
        (
            "application/xml",
            {"Content-Type": "application/xml"},
            b'{"events": []}',
            415,
            "unsupported_media_type",
        ),
        # text/plain is accepted (sendBeacon) but must still hold a valid batch.
        (
            "text/plain empty",
            {"Content-Type": "text/plain"},
            b'{"events": []}',
            400,
            "malformed_body",
        ),
        ("no key", {"X-API-Key": ""}, b'{"events": []}', 401, "unauthorized"),
        ("wrong key", {"X-API-Key": "nope"}, b'{"events": []}', 401, "unauthorized"),
    ],
)
async def test_bad_requests_get_documented_errors_and_the_collector_keeps_working(
    make_collector: CollectorFactory,
    topics: TopicsConfig,
    name: str,
    headers: dict[str, str],
    body: bytes,
    status: int,
    code: str,
) -> None:
    client = await make_collector()
    response = await client.post("/v1/events", data=body, headers={**auth(), **headers})
    answer = await response.json()
    assert response.status == status, (name, answer)
    assert answer["error"] == code
    assert_matches_openapi("/v1/events", status, answer)
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")

    # The same collector still accepts a valid batch afterwards.
    ok = await client.post(
        "/v1/events", json={"events": [event("playing", now_ms())]}, headers=auth()
    )
    assert ok.status == 202
    assert len(await consume(topics.kafka_bootstrap_servers, topics.raw_topic, expected=1)) == 1


async def test_gzip_bodies_and_bearer_keys_are_accepted(
    make_collector: CollectorFactory, topics: TopicsConfig
) -> None:
    client = await make_collector()
    payload = gzip.compress(json.dumps({"events": [event("pause", now_ms())]}).encode())
    response = await client.post(
        "/v1/events",
        data=payload,
        headers={
            "Authorization": f"Bearer {OTHER_KEY}",
            "Content-Type": "application/json; charset=utf-8",
            "Content-Encoding": "gzip",
        },
    )
    body = await response.json()
    # The key belongs to org_other while the event claims org_test.
    assert response.status == 400
    assert body["errors"][0]["code"] == "org_mismatch"
    payload = gzip.compress(
        json.dumps({"events": [event("pause", now_ms(), org_id="org_other")]}).encode()
    )
    response = await client.post(
        "/v1/events",
        data=payload,
        headers={
            "Authorization": f"Bearer {OTHER_KEY}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
    )
    assert response.status == 202


async def test_cors_preflight_and_headers_on_every_answer(make_collector: CollectorFactory) -> None:
    client = await make_collector()
    origin = "https://player.example"
    preflight = await client.options(
        "/v1/events",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-sdk-version, x-api-key",
        },
    )
    assert preflight.status == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == origin
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    allowed = {
        h.strip().lower() for h in preflight.headers["Access-Control-Allow-Headers"].split(",")
    }
    assert {"content-type", "x-sdk-version", "x-api-key"} <= allowed
    assert int(preflight.headers["Access-Control-Max-Age"]) > 0
    assert "Access-Control-Allow-Credentials" not in preflight.headers

    denied = await client.options(
        "/v1/events",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert denied.status == 403
    assert "Access-Control-Allow-Origin" not in denied.headers

    # Errors carry CORS headers too, so a browser can read them (the original's 401 did not).
    for headers, status in [
        ({"Origin": origin, "X-API-Key": "wrong"}, 401),
        ({**auth(), "Origin": origin, "Content-Type": "application/xml"}, 415),
        ({**auth(), "Origin": origin}, 202),
    ]:
        response = await client.post(
            "/v1/events", json={"events": [event("pause", now_ms())]}, headers=headers
        )
        assert response.status == status
        assert response.headers["Access-Control-Allow-Origin"] == origin
        assert "Origin" in response.headers.get("Vary", "")
        assert "Access-Control-Allow-Credentials" not in response.headers


async def test_per_org_rate_limit_answers_429_with_retry_after(
    make_collector: CollectorFactory, topics: TopicsConfig
) -> None:
    client = await make_collector(org_rate_limit_eps=1.0, org_burst_events=100)
    batch = {"events": [event("heartbeat", now_ms()) for _ in range(60)]}
    first = await client.post("/v1/events", json=batch, headers=auth())
    assert first.status == 202
    second = await client.post("/v1/events", json=batch, headers=auth())
    assert second.status == 429
    assert (await second.json())["error"] == "rate_limited"
    assert int(second.headers["Retry-After"]) >= 1
    # Another organisation has its own bucket.
    other = {"events": [event("heartbeat", now_ms(), org_id="org_other") for _ in range(60)]}
    assert (await client.post("/v1/events", json=other, headers=auth(OTHER_KEY))).status == 202
    records = await consume(topics.kafka_bootstrap_servers, topics.raw_topic, expected=120)
    assert len(records) == 120


async def test_health_ready_and_metrics(make_collector: CollectorFactory) -> None:
    client = await make_collector()
    index = await client.get("/")
    assert index.status == 200
    assert_matches_openapi("/", 200, await index.json())
    assert "POST /v1/events" in (await index.json())["endpoints"]
    assert (await client.get("/health")).status == 200
    ready = await client.get("/ready")
    assert ready.status == 200, await ready.text()
    await client.post(
        "/v1/events",
        json={"events": [event("playing", now_ms()), event("dance", now_ms())]},
        headers=auth(),
    )
    await client.post("/v1/events", data=b"{", headers=auth())
    text = await (await client.get("/metrics")).text()
    assert 'openqoe_ingest_events_accepted_total{event_type="playing"} 1.0' in text
    assert 'openqoe_ingest_events_rejected_total{reason="unknown_event_type"} 1.0' in text
    assert 'openqoe_ingest_http_requests_total{code="207",handler="events"} 1.0' in text
    assert 'openqoe_ingest_http_requests_total{code="400",handler="events"} 1.0' in text
    assert "openqoe_ingest_produce_duration_seconds_count 1.0" in text
    assert "openqoe_ingest_in_flight_events 0.0" in text


async def test_ready_is_503_when_a_topic_is_missing(make_collector: CollectorFactory) -> None:
    client = await make_collector(raw_topic="test.does-not-exist")
    response = await client.get("/ready")
    assert response.status == 503
    assert (await response.json())["status"] == "not_ready"
