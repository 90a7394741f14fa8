"""The local media server of the browser tests and the SDK demo pages.

Serves the generated media (``/media/...``, or ``/f/<faults>/media/...`` with faults from
tests.media.faults), the demo pages (``/demo/``), the SDK bundle (``/sdk/``), the players
from sdk/node_modules (``/node_modules/<player>/``), and a collector proxy
(``/c/<faults>/...``) that can lose the collector's answers. It records every media request
with its timing, so a test knows what it injected, and has a control API:

    GET  /_control/log?run=ID       the run's requests (epoch ms, path, kind, held, ...)
    POST /_control/release?run=ID   release the run's held segments (optional &after_ms=N)

    python -m tests.media.server --port 8090 --collector http://127.0.0.1:8080
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import logging
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, ClientTimeout, web

from tests.media import catalog
from tests.media.faults import Faults, FaultSpecError, classify
from tests.media.generate import MPD_NS, generate, hls_master

REPO = Path(__file__).resolve().parents[2]
PLAYERS = ("hls.js", "dashjs", "shaka-player", "video.js")
CHUNK = 64 * 1024
log = logging.getLogger("openqoe.media")


@dataclass(frozen=True)
class ServerConfig:
    media_dir: Path
    demo_dir: Path = REPO / "sdk" / "demo"
    sdk_dist: Path = REPO / "sdk" / "dist"
    node_modules: Path = REPO / "sdk" / "node_modules"
    # Defaults the demo pages read from /demo/config.js (query parameters override them).
    collector_url: str = "http://127.0.0.1:8080"
    ingest_key: str = "demo-ingest-key"
    org_id: str = "demo"


@dataclass
class Run:
    released: asyncio.Event = field(default_factory=asyncio.Event)
    requests: list[dict[str, Any]] = field(default_factory=list)
    batches: int = 0
    # Bodies whose first answer was lost (lose=N): their retries are answered normally.
    lost: set[bytes] = field(default_factory=set)

    def record(self, **entry: Any) -> dict[str, Any]:
        entry.setdefault("t_ms", now_ms())
        self.requests.append(entry)
        return entry


def now_ms() -> float:
    # Epoch ms: comparable with the page's Date.now() and with event times.
    return time.time() * 1000


CONFIG = web.AppKey("config", ServerConfig)
RUNS = web.AppKey("runs", dict[str, Run])
MEDIA = web.AppKey("media", dict[str, bytes])
HTTP = web.AppKey("http", ClientSession)


def _run(request: web.Request, name: str) -> Run:
    runs = request.app[RUNS]
    if name not in runs:
        runs[name] = Run()
    return runs[name]


def _faults(request: web.Request) -> Faults:
    try:
        return Faults.parse(request.match_info.get("spec", ""))
    except (FaultSpecError, KeyError) as exc:
        raise web.HTTPBadRequest(text=f"bad fault spec: {exc}") from exc


def load_media(media_dir: Path) -> dict[str, bytes]:
    """Every media file by relative path: ~20 MB, read once, so serving never blocks."""
    return {
        p.relative_to(media_dir).as_posix(): p.read_bytes()
        for p in sorted(media_dir.rglob("*"))
        if p.is_file() and "src" not in p.relative_to(media_dir).parts
    }


def _trimmed_manifest(path: str, data: bytes, only: str) -> bytes | None:
    """The master playlist / MPD listing only rendition ``only`` (None: not a master)."""
    if path == "hls/master.m3u8":
        return hls_master([catalog.rendition(only)]).encode()
    if path.endswith(".mpd"):
        keep = str([r.name for r in catalog.RENDITIONS].index(only))
        ET.register_namespace("", MPD_NS)
        root = ET.fromstring(data)  # noqa: S314 (our own generated MPD)
        for adaptation in root.iter(f"{{{MPD_NS}}}AdaptationSet"):
            if adaptation.get("contentType") != "video":
                continue
            for rep in list(adaptation.findall(f"{{{MPD_NS}}}Representation")):
                if rep.get("id") != keep:
                    adaptation.remove(rep)
        trimmed: bytes = ET.tostring(root, xml_declaration=True, encoding="utf-8")
        return trimmed
    return None


_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".mpd": "application/dash+xml",
    ".ts": "video/mp2t",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
}
_NO_STORE = {"Cache-Control": "no-store", "Access-Control-Allow-Origin": "*"}


async def media(request: web.Request) -> web.StreamResponse:
    faults = _faults(request)
    run = _run(request, faults.run)
    path = request.match_info["path"]
    what = classify(path)
    entry = run.record(
        path=path, kind=what.kind, rendition=what.rendition, index=what.index, held=False
    )
    if faults.fail_match and faults.fail_match in path:
        entry["status"] = faults.fail_status
        return web.Response(status=faults.fail_status or 500, text="injected", headers=_NO_STORE)
    data = request.app[MEDIA].get(path)
    if data is None:
        entry["status"] = 404
        raise web.HTTPNotFound(text=f"no media {path}", headers=_NO_STORE)
    if faults.startdelay_ms and (what.index == 1 or what.kind == "progressive"):
        entry["delayed_ms"] = faults.startdelay_ms
        await asyncio.sleep(faults.startdelay_ms / 1000)
    if what.kind == "progressive":
        return await _progressive(request, data, faults, run, entry)
    if faults.hold_segment is not None and what.carries_video and what.index == faults.hold_segment:
        entry["held"] = True
        await run.released.wait()
    body = _trimmed_manifest(path, data, faults.only) if faults.only else None
    entry["status"] = 200
    entry["served_ms"] = now_ms()
    suffix = Path(path).suffix
    headers = {**_NO_STORE, "Content-Type": _TYPES.get(suffix, "application/octet-stream")}
    return web.Response(body=body if body is not None else data, headers=headers)


_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


async def _progressive(
    request: web.Request, data: bytes, faults: Faults, run: Run, entry: dict[str, Any]
) -> web.StreamResponse:
    """The MP4 with byte ranges; a hold stops the bytes where segment K would start."""
    size = len(data)
    start, end = 0, size - 1
    match = _RANGE.match(request.headers.get("Range", ""))
    if match:
        start = int(match[1])
        end = min(int(match[2]), size - 1) if match[2] else size - 1
    hold_at: int | None = None
    if faults.hold_segment is not None:
        hold_at = size * (faults.hold_segment - 1) * catalog.SEGMENT_S // catalog.DURATION_S
    response = web.StreamResponse(
        status=206 if match else 200,
        headers={
            **_NO_STORE,
            "Content-Type": "video/mp4",
            "Accept-Ranges": "bytes",
            "Content-Length": str(end - start + 1),
            **({"Content-Range": f"bytes {start}-{end}/{size}"} if match else {}),
        },
    )
    entry.update(status=response.status, range=[start, end])
    await response.prepare(request)
    position = start
    while position <= end:
        if hold_at is not None and position >= hold_at and not run.released.is_set():
            entry["held"] = True
            entry["held_at_byte"] = position
            await run.released.wait()
        limit = end + 1 - position
        if hold_at is not None and position < hold_at:
            limit = min(limit, hold_at - position)
        chunk = data[position : position + min(CHUNK, limit)]
        await response.write(chunk)
        position += len(chunk)
    entry["served_ms"] = now_ms()
    await response.write_eof()
    return response


async def collector_proxy(request: web.Request) -> web.StreamResponse:
    """Forwards to the collector; with ``lose=N`` the first N distinct batches are forwarded
    (so they are durable) but the page gets a 503, as if the answer was lost: the retry of
    the same batch must not count twice."""
    faults = _faults(request)
    run = _run(request, faults.run)
    config = request.app[CONFIG]
    tail = request.match_info["tail"]
    url = f"{config.collector_url.rstrip('/')}/{tail}"
    headers = {
        k: v
        for k, v in request.headers.items()
        if k.lower() in ("content-type", "content-encoding", "x-api-key", "origin")
        or k.lower().startswith("access-control-request")
    }
    body = await request.read()
    async with request.app[HTTP].request(
        request.method, url, params=request.query, data=body, headers=headers
    ) as upstream:
        text = await upstream.read()
        status = upstream.status
        reply_headers = {
            k: v for k, v in upstream.headers.items() if k.lower().startswith(("access-", "ret"))
        }
    entry = run.record(kind="collector", method=request.method, path=tail, upstream=status)
    if request.method == "POST":
        run.batches += 1
        digest = hashlib.sha256(body).digest()
        if digest not in run.lost and len(run.lost) < faults.lose_batches:
            run.lost.add(digest)
            entry["sent"] = 503
            return web.Response(status=503, text="injected", headers={"Retry-After": "1"})
    entry["sent"] = status
    return web.Response(status=status, body=text, headers=reply_headers)


async def control_log(request: web.Request) -> web.Response:
    run = _run(request, request.query.get("run", "default"))
    return web.json_response({"requests": run.requests, "batches": run.batches})


async def control_release(request: web.Request) -> web.Response:
    run = _run(request, request.query.get("run", "default"))
    after_ms = float(request.query.get("after_ms", "0"))

    async def release() -> None:
        await asyncio.sleep(max(after_ms, 0) / 1000)
        run.released.set()
        run.record(kind="release")

    if after_ms > 0:
        run.record(kind="release_scheduled", after_ms=after_ms)
        task = asyncio.get_running_loop().create_task(release())
        # Kept referenced so the task is not garbage-collected before it fires.
        _TASKS.add(task)
        task.add_done_callback(_TASKS.discard)
    else:
        await release()
    return web.json_response({"ok": True})


_TASKS: set[asyncio.Task[None]] = set()


async def demo_config(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    defaults = {
        "collectorUrl": config.collector_url,
        "ingestKey": config.ingest_key,
        "orgId": config.org_id,
    }
    return web.Response(
        text=f"window.OPENQOE_DEMO = {json.dumps(defaults)};\n",
        content_type="application/javascript",
        headers={"Cache-Control": "no-store"},
    )


async def index(_request: web.Request) -> web.Response:
    raise web.HTTPFound("/demo/index.html")


async def _http_client(app: web.Application) -> AsyncIterator[None]:
    app[HTTP] = ClientSession(timeout=ClientTimeout(total=30))
    yield
    await app[HTTP].close()


def create_app(config: ServerConfig) -> web.Application:
    app = web.Application()
    app[CONFIG] = config
    app[RUNS] = {}
    app[MEDIA] = load_media(config.media_dir)
    app.cleanup_ctx.append(_http_client)
    app.router.add_get("/", index)
    app.router.add_get("/media/{path:.+}", media)
    app.router.add_get("/f/{spec}/media/{path:.+}", media)
    app.router.add_route("*", "/c/{spec}/{tail:.+}", collector_proxy)
    app.router.add_get("/_control/log", control_log)
    app.router.add_post("/_control/release", control_release)
    app.router.add_get("/demo/config.js", demo_config)
    if config.demo_dir.is_dir():
        app.router.add_static("/demo/", config.demo_dir)
    if config.sdk_dist.is_dir():
        app.router.add_static("/sdk/", config.sdk_dist)
    for player in PLAYERS:
        folder = config.node_modules / player
        if folder.is_dir():
            app.router.add_static(f"/node_modules/{player}/", folder)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="OpenQoE demo pages and test media server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--collector", default=ServerConfig.collector_url)
    parser.add_argument("--key", default=ServerConfig.ingest_key)
    parser.add_argument("--org", default=ServerConfig.org_id)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    config = ServerConfig(
        media_dir=generate(), collector_url=args.collector, ingest_key=args.key, org_id=args.org
    )
    with contextlib.suppress(KeyboardInterrupt):
        web.run_app(create_app(config), host=args.host, port=args.port, print=log.info)


if __name__ == "__main__":
    main()
