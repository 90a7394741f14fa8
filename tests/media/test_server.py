"""The media server's faults and record, against a small fake media tree (fast: no ffmpeg)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.media import catalog
from tests.media.faults import Faults, FaultSpecError, classify
from tests.media.generate import hls_master
from tests.media.server import ServerConfig, create_app

MPD = """<?xml version="1.0"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011"><Period>
<AdaptationSet contentType="video"><Representation id="0" bandwidth="1"/>
<Representation id="1" bandwidth="2"/><Representation id="2" bandwidth="3"/></AdaptationSet>
<AdaptationSet contentType="audio"><Representation id="3" bandwidth="4"/></AdaptationSet>
</Period></MPD>"""


@pytest.fixture
def media_dir(tmp_path: Path) -> Path:
    (tmp_path / "hls" / "540p").mkdir(parents=True)
    (tmp_path / "hls" / "master.m3u8").write_text(hls_master(catalog.RENDITIONS))
    for n in range(6):
        (tmp_path / "hls" / "540p" / f"seg_{n:03d}.ts").write_bytes(bytes([n]) * 10)
    (tmp_path / "dash").mkdir()
    (tmp_path / "dash" / "manifest.mpd").write_text(MPD)
    (tmp_path / "progressive.mp4").write_bytes(bytes(range(256)) * 48)
    return tmp_path


@pytest.fixture
async def client(aiohttp_client: Any, media_dir: Path) -> Any:
    return await aiohttp_client(create_app(ServerConfig(media_dir=media_dir)))


async def log(client: Any, run: str) -> list[dict[str, Any]]:
    response = await client.get("/_control/log", params={"run": run})
    requests: list[dict[str, Any]] = (await response.json())["requests"]
    return requests


def test_classify_names_rendition_and_one_based_segment() -> None:
    assert classify("hls/720p/seg_004.ts").index == 5
    assert classify("hls/720p/seg_004.ts").rendition == "720p"
    video = classify("dash/chunk-1-00005.m4s")
    assert (video.kind, video.rendition, video.index) == ("video", "540p", 5)
    assert classify("dash/chunk-3-00005.m4s").kind == "audio"
    assert classify("hls/master.m3u8").kind == "manifest"


def test_bad_specs_are_clear_errors() -> None:
    with pytest.raises(FaultSpecError, match="unknown faults"):
        Faults.parse("run=a,bogus=1")
    with pytest.raises(FaultSpecError, match="CODE:TEXT"):
        Faults.parse("fail=404")
    with pytest.raises(KeyError, match="no rendition"):
        Faults.parse("only=4k")


async def test_bad_spec_answers_400(client: Any) -> None:
    response = await client.get("/f/hold=x/media/hls/master.m3u8")
    assert response.status == 400
    assert "bad fault spec" in await response.text()


async def test_held_segment_waits_for_release_and_is_recorded(client: Any) -> None:
    fetch = asyncio.ensure_future(client.get("/f/run=h,hold=5/media/hls/540p/seg_004.ts"))
    other = await client.get("/f/run=h,hold=5/media/hls/540p/seg_003.ts")
    assert other.status == 200  # only segment 5 is held
    await asyncio.sleep(0.3)
    assert not fetch.done()
    started = time.time() * 1000
    response = await client.post("/_control/release", params={"run": "h", "after_ms": "200"})
    assert response.status == 200
    held = await asyncio.wait_for(fetch, 5)
    assert held.status == 200
    assert await held.read() == bytes([4]) * 10
    entries = {e["path"]: e for e in await log(client, "h") if "path" in e}
    entry = entries["hls/540p/seg_004.ts"]
    assert entry["held"] is True
    assert entry["served_ms"] - started >= 190
    assert entries["hls/540p/seg_003.ts"]["held"] is False


async def test_start_delay_applies_to_first_segment_only(client: Any) -> None:
    started = time.monotonic()
    assert (await client.get("/f/run=d,startdelay=300/media/hls/540p/seg_000.ts")).status == 200
    assert time.monotonic() - started >= 0.29
    started = time.monotonic()
    assert (await client.get("/f/run=d,startdelay=300/media/hls/540p/seg_001.ts")).status == 200
    assert time.monotonic() - started < 0.25


async def test_fail_answers_the_status_for_matching_paths(client: Any) -> None:
    response = await client.get("/f/run=e,fail=404:seg_002/media/hls/540p/seg_002.ts")
    assert response.status == 404
    assert (await client.get("/f/run=e,fail=404:seg_002/media/hls/540p/seg_001.ts")).status == 200
    assert [e["status"] for e in await log(client, "e")] == [404, 200]


async def test_only_trims_master_and_mpd_to_one_rendition(client: Any) -> None:
    master = await (await client.get("/f/only=540p/media/hls/master.m3u8")).text()
    assert master.count("#EXT-X-STREAM-INF") == 1
    assert "BANDWIDTH=1400000,RESOLUTION=960x540" in master
    mpd = await (await client.get("/f/only=720p/media/dash/manifest.mpd")).text()
    assert 'id="2"' in mpd
    assert 'id="0"' not in mpd
    assert 'id="1"' not in mpd
    assert 'id="3"' in mpd  # audio stays


async def test_progressive_ranges_and_byte_hold(client: Any) -> None:
    whole = await client.get("/media/progressive.mp4", headers={"Range": "bytes=10-19"})
    assert whole.status == 206
    assert whole.headers["Content-Range"] == f"bytes 10-19/{256 * 48}"
    assert await whole.read() == bytes(range(10, 20))
    # Segment 7 of 12 starts half-way: the body stops there until released.
    fetch = asyncio.ensure_future(client.get("/f/run=p,hold=7/media/progressive.mp4"))
    response = await asyncio.wait_for(fetch, 5)
    first = await response.content.readexactly(256 * 24)
    assert first == bytes(range(256)) * 24
    rest = asyncio.ensure_future(response.content.read())
    await asyncio.sleep(0.2)
    assert not rest.done()
    await client.post("/_control/release", params={"run": "p"})
    assert await asyncio.wait_for(rest, 5) == bytes(range(256)) * 24


async def test_collector_proxy_forwards_then_loses_the_answer(
    aiohttp_client: Any, aiohttp_server: Any, media_dir: Path
) -> None:
    received: list[bytes] = []

    async def events(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.json_response({"accepted": 1}, status=202)

    upstream_app = web.Application()
    upstream_app.router.add_post("/v1/events", events)
    upstream = await aiohttp_server(upstream_app)
    config = ServerConfig(media_dir=media_dir, collector_url=str(upstream.make_url("/")))
    client = await aiohttp_client(create_app(config))
    url = "/c/run=c,lose=2/v1/events?key=k"
    first = await client.post(url, data=b'{"events":[1]}')
    assert first.status == 503
    assert first.headers["Retry-After"] == "1"
    assert (await client.post(url, data=b'{"events":[1]}')).status == 202  # the retry
    assert (await client.post(url, data=b'{"events":[2]}')).status == 503
    assert (await client.post(url, data=b'{"events":[2]}')).status == 202
    assert (await client.post(url, data=b'{"events":[3]}')).status == 202  # past N
    # The lost answers' batches did arrive: each is in the collector twice.
    assert received == [b'{"events":[1]}'] * 2 + [b'{"events":[2]}'] * 2 + [b'{"events":[3]}']
