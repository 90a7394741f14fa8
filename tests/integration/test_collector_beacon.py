"""What the browser SDK sends on page exit and with keepalive, against the real broker.

``navigator.sendBeacon`` cannot set headers: the ingest key comes as ``?key=`` and the
JSON batch as a CORS-safelisted ``text/plain`` body (no preflight). The keepalive fetch
of the normal path sends ``X-API-Key`` and ``application/json``, so it is preflighted.
"""

from __future__ import annotations

import json
import time

import pytest

from ingest.topics import TopicsConfig
from schemas import player_event_reader
from tests.events import event
from tests.integration.conftest import OTHER_KEY, TEST_KEY, CollectorFactory, consume

pytestmark = pytest.mark.kafka

ORIGIN = "https://player.example"


def now_ms() -> int:
    return int(time.time() * 1000)


def beacon_body(*events: dict[str, object]) -> bytes:
    return json.dumps({"events": list(events)}).encode()


async def test_a_beacon_with_the_key_in_the_query_and_a_text_plain_body_lands_in_kafka(
    make_collector: CollectorFactory, topics: TopicsConfig
) -> None:
    client = await make_collector()
    sent = event("view_end", now_ms(), data={"reason": "unload"}, sequence=9, event_id="e-1")
    response = await client.post(
        f"/v1/events?key={TEST_KEY}",
        data=beacon_body(sent),
        headers={"Content-Type": "text/plain;charset=UTF-8", "Origin": ORIGIN},
    )
    body = await response.json()
    assert response.status == 202, body
    assert body == {"accepted": 1, "rejected": 0, "errors": []}
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    [record] = await consume(topics.kafka_bootstrap_servers, topics.raw_topic, expected=1)
    decoded = player_event_reader().decode(record.value)
    assert decoded["event_type"] == "view_end"
    assert decoded["data"]["reason"] == "unload"
    assert decoded["sequence"] == 9
    assert decoded["org_id"] == "org_test"


async def test_the_query_key_is_checked_like_the_header_key(
    make_collector: CollectorFactory, topics: TopicsConfig
) -> None:
    client = await make_collector()
    headers = {"Content-Type": "text/plain"}
    wrong = await client.post(
        "/v1/events?key=nope", data=beacon_body(event("pause", now_ms())), headers=headers
    )
    assert wrong.status == 401
    missing = await client.post(
        "/v1/events", data=beacon_body(event("pause", now_ms())), headers=headers
    )
    assert missing.status == 401
    # The key decides the organisation, whatever the query says.
    other = await client.post(
        f"/v1/events?key={OTHER_KEY}", data=beacon_body(event("pause", now_ms())), headers=headers
    )
    assert other.status == 400
    assert (await other.json())["errors"][0]["code"] == "org_mismatch"
    # A header key wins over the query.
    both = await client.post(
        f"/v1/events?key={OTHER_KEY}",
        data=beacon_body(event("pause", now_ms())),
        headers={**headers, "X-API-Key": TEST_KEY},
    )
    assert both.status == 202


async def test_text_plain_that_is_not_a_batch_is_a_clear_400(
    make_collector: CollectorFactory,
) -> None:
    client = await make_collector()
    response = await client.post(
        f"/v1/events?key={TEST_KEY}", data=b"hello", headers={"Content-Type": "text/plain"}
    )
    assert response.status == 400
    assert (await response.json())["error"] == "malformed_body"
    other_type = await client.post(
        f"/v1/events?key={TEST_KEY}",
        data=beacon_body(event("pause", now_ms())),
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )
    assert other_type.status == 415


async def test_text_plain_from_an_origin_cors_does_not_allow_is_refused(
    make_collector: CollectorFactory, topics: TopicsConfig
) -> None:
    client = await make_collector()
    refused = await client.post(
        f"/v1/events?key={TEST_KEY}",
        data=beacon_body(event("pause", now_ms())),
        headers={"Content-Type": "text/plain", "Origin": "https://evil.example"},
    )
    assert refused.status == 403
    assert (await refused.json())["error"] == "forbidden_origin"
    # A page served by the collector's own host is same-origin.
    host = f"http://{client.server.host}:{client.server.port}"
    same = await client.post(
        f"/v1/events?key={TEST_KEY}",
        data=beacon_body(event("pause", now_ms())),
        headers={"Content-Type": "text/plain", "Origin": host},
    )
    assert same.status == 202
    records = await consume(topics.kafka_bootstrap_servers, topics.raw_topic, expected=1)
    assert len(records) == 1, "the refused beacon wrote nothing"


async def test_text_plain_from_any_origin_when_cors_allows_every_origin(
    make_collector: CollectorFactory,
) -> None:
    client = await make_collector(cors_origins=("*",))
    response = await client.post(
        f"/v1/events?key={TEST_KEY}",
        data=beacon_body(event("pause", now_ms())),
        headers={"Content-Type": "text/plain", "Origin": "https://anywhere.example"},
    )
    assert response.status == 202


async def test_a_cross_origin_429_exposes_retry_after_to_the_sdk(
    make_collector: CollectorFactory,
) -> None:
    # The preflight of the keepalive fetch (Content-Type, X-API-Key) is covered by
    # test_collector.py::test_cors_preflight_and_headers_on_every_answer.
    client = await make_collector(
        org_rate_limit_eps=1.0, org_burst_events=2, max_events_per_batch=2
    )
    headers = {"Content-Type": "application/json", "X-API-Key": TEST_KEY, "Origin": ORIGIN}
    body = beacon_body(event("pause", now_ms()), event("pause", now_ms()))
    assert (await client.post("/v1/events", data=body, headers=headers)).status == 202
    answer = await client.post("/v1/events", data=body, headers=headers)
    assert answer.status == 429
    assert int(answer.headers["Retry-After"]) >= 1
    assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN
    # Without this a script cannot read Retry-After and would fall back to its own backoff.
    assert "retry-after" in answer.headers["Access-Control-Expose-Headers"].lower()
