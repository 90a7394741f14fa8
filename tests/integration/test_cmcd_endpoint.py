"""/v1/cmcd against the real broker: CMCD v2 event-mode reports as hls.js, dash.js and
Shaka send them (POST bodies, CMCD= queries, CMCD-* headers) become durable events."""

from __future__ import annotations

import time
from urllib.parse import quote

import pytest

from ingest.topics import TopicsConfig
from schemas import player_event_reader, rejected_event_codec
from tests.integration.conftest import TEST_KEY, CollectorFactory, consume

pytestmark = pytest.mark.kafka
CMCD = {"Content-Type": "application/cmcd"}


def now_ms() -> int:
    return int(time.time() * 1000)


def rec(body: str, sn: int, t: int | None = None) -> str:
    return f'cid="movie",{body},sid="sess-1",sn={sn},ts={t or now_ms()},v=2'


async def test_a_batch_body_with_a_trailing_lf_is_durable_before_the_204(
    make_collector: CollectorFactory, topics: TopicsConfig
) -> None:
    client = await make_collector()
    body = "\n".join(
        [rec("e=ps,sta=s", 0), rec("br=(3000;v),e=ps,msd=812,sta=p", 1), rec('e=rr,url="x"', 2)]
    )
    response = await client.post(
        f"/v1/cmcd/{TEST_KEY}?player=dashjs&env=prod", data=body + "\n", headers=CMCD
    )
    assert response.status == 204, await response.text()
    assert await response.read() == b""
    records = await consume(topics.kafka_bootstrap_servers, topics.raw_topic, expected=2)
    events = sorted((player_event_reader().decode(r.value) for r in records), key=str)
    assert sorted(e["event_type"] for e in events) == ["playing", "viewstart"]
    assert {e["org_id"] for e in events} == {"org_test"}  # the key in the path decides
    assert {e["player"]["name"] for e in events} == {"dashjs"}
    assert len({e["view_id"] for e in events}) == 1
    assert {r.key for r in records} == {events[0]["view_id"].encode()}
    playing = next(e for e in events if e["event_type"] == "playing")
    assert playing["data"]["video_startup_time"] == 812
    assert playing["data"]["bitrate"] == 3_000_000
    metrics = await (await client.get("/metrics")).text()
    assert 'openqoe_ingest_cmcd_records_total{outcome="used"} 2.0' in metrics
    assert 'openqoe_ingest_cmcd_records_total{outcome="ignored"} 1.0' in metrics


async def test_text_cmcd_query_and_headers_transports(
    make_collector: CollectorFactory, topics: TopicsConfig
) -> None:
    client = await make_collector()
    old_type = await client.post(
        f"/v1/cmcd/{TEST_KEY}", data=rec("e=ps,sta=s", 0), headers={"Content-Type": "text/cmcd"}
    )
    assert old_type.status == 204
    query = await client.get(f"/v1/cmcd/{TEST_KEY}?CMCD={quote(rec('e=ps,sta=p', 1))}")
    assert query.status == 204
    shards = {
        "CMCD-Session": f'cid="movie",sid="sess-1",v=2,ts={now_ms()}',
        "CMCD-Request": "sn=2",
        "CMCD-Status": "e=ps,sta=r",
        "X-API-Key": TEST_KEY,
    }
    headers = await client.post("/v1/cmcd", headers=shards)
    assert headers.status == 204, await headers.text()
    # Headers win over the query, which is then ignored (5004-B).
    both = await client.get(
        f"/v1/cmcd?CMCD={quote(rec('e=ps,sta=e', 3))}",
        headers={**shards, "CMCD-Request": "sn=4", "CMCD-Status": "e=ps,sta=p"},
    )
    assert both.status == 204
    records = await consume(topics.kafka_bootstrap_servers, topics.raw_topic, expected=4)
    kinds = sorted(player_event_reader().decode(r.value)["event_type"] for r in records)
    assert kinds == ["playing", "playing", "stall_start", "viewstart"]


async def test_bad_records_go_to_the_dead_letters_with_reasons(
    make_collector: CollectorFactory, topics: TopicsConfig
) -> None:
    client = await make_collector()
    body = "\n".join(
        [
            rec("e=ps,sta=s", 0),
            'cid="unterminated,e=t',
            rec("e=t,sta=p", 1).replace("v=2", "v=3"),
            rec("e=ps,sta=p", 2, t=now_ms() - 3 * 86_400_000),  # outside the time window
        ]
    )
    response = await client.post(f"/v1/cmcd/{TEST_KEY}", data=body, headers=CMCD)
    assert response.status == 204  # one record was used
    dead = await consume(topics.kafka_bootstrap_servers, topics.rejected_topic, expected=3)
    reasons = sorted(rejected_event_codec().decode(r.value)["errors"][0]["code"] for r in dead)
    assert reasons == ["too_old", "unparseable", "unsupported_version"]
    assert len(await consume(topics.kafka_bootstrap_servers, topics.raw_topic, expected=1)) == 1

    nothing_usable = await client.post(
        f"/v1/cmcd/{TEST_KEY}", data='e=t,sid="s",ts=1', headers=CMCD
    )
    assert nothing_usable.status == 400
    answer = await nothing_usable.json()
    assert answer["accepted"] == 0
    assert answer["errors"][0]["code"] == "missing"


async def test_refusals(make_collector: CollectorFactory) -> None:
    client = await make_collector()
    record = rec("e=ps,sta=s", 0)
    assert (await client.post("/v1/cmcd/wrong-key", data=record, headers=CMCD)).status == 401
    assert (await client.post("/v1/cmcd", data=record, headers=CMCD)).status == 401
    as_query = await client.post(f"/v1/cmcd?key={TEST_KEY}", data=record, headers=CMCD)
    assert as_query.status == 204  # the same key sources as /v1/events
    plain = await client.post(
        f"/v1/cmcd/{TEST_KEY}", data=record, headers={"Content-Type": "application/json"}
    )
    assert plain.status == 415
    assert (await client.get(f"/v1/cmcd/{TEST_KEY}")).status == 400  # no CMCD data at all
    too_many = "\n".join(rec("e=t,sta=p", i) for i in range(101))  # test limit: 100
    assert (await client.post(f"/v1/cmcd/{TEST_KEY}", data=too_many, headers=CMCD)).status == 413


async def test_cors_preflight_for_a_player_on_another_origin(
    make_collector: CollectorFactory,
) -> None:
    client = await make_collector()
    preflight = await client.options(
        f"/v1/cmcd/{TEST_KEY}",
        headers={
            "Origin": "https://player.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://player.example"
