"""Synthetic player traffic: realistic views sent to a collector.

``python -m bench.traffic --url http://127.0.0.1:8080 --views 20 --duration 120`` keeps
20 views playing at a time for two minutes, in real time, each sending events in batches as
the SDK does. A view plays a 1, 2 or 5 minute video: start-up of ~1 s (log-normal), a
heartbeat every 10 s, stalls in ~8 % of heartbeat intervals, bitrate switches, seeks,
quartiles; 3 % fail to start, 5 % leave before the first frame, 2 % end in a fatal error,
and the rest watch 30 %, 60 % or all of the video. ``--speed 10`` replays ten times faster
(every duration, start-up times included, shrinks with it).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from typing import Any

import aiohttp

DEVICES = [
    ({"category": "desktop", "name": "Windows PC"}, {"family": "Windows"}, {"family": "Chrome"}),
    ({"category": "desktop", "name": "Mac"}, {"family": "macOS"}, {"family": "Safari"}),
    ({"category": "mobile", "name": "iPhone"}, {"family": "iOS"}, {"family": "Safari"}),
    ({"category": "mobile", "name": "Android Device"}, {"family": "Android"}, {"family": "Chrome"}),
    ({"category": "tv", "name": "Smart TV"}, {"family": "Tizen"}, {"family": "Samsung Internet"}),
]
PLAYERS = ["html5", "videojs", "hlsjs", "dashjs", "shaka"]
LADDER_BPS = [800_000, 1_600_000, 3_000_000, 6_000_000]
HEIGHTS = {800_000: 360, 1_600_000: 540, 3_000_000: 720, 6_000_000: 1080}


def base_event(
    view: dict[str, Any], event_type: str, t_ms: int, data: dict[str, Any]
) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "event_time": t_ms,
        "viewer_time": t_ms,
        "playback_time": view["position_ms"],
        "org_id": view["org_id"],
        "player_id": "web-main",
        "view_id": view["view_id"],
        "session_id": view["session_id"],
        "viewer_id": view["viewer_id"],
        "env": "prod",
        "app_name": "demo",
        "device": view["device"],
        "os": view["os"],
        "browser": view["browser"],
        "player": {"name": view["player"], "version": "1.0", "autoplay": False},
        "network": {},
        "video": {"id": view["video_id"], "title": "Demo", "duration": view["duration_ms"]},
        "data": data,
    }


def new_view(rng: random.Random, org_id: str) -> dict[str, Any]:
    device, os_, browser = rng.choice(DEVICES)
    return {
        "view_id": str(uuid.uuid4()),
        "session_id": str(uuid.uuid4()),
        "viewer_id": uuid.uuid4().hex * 2,
        "org_id": org_id,
        "device": device,
        "os": os_,
        "browser": browser,
        "player": rng.choice(PLAYERS),
        "video_id": f"video_{rng.randrange(50)}",
        "duration_ms": rng.choice([60_000, 120_000, 300_000]),
        "position_ms": 0.0,
    }


def view_script(
    rng: random.Random, view: dict[str, Any], start_ms: int, heartbeat_ms: int
) -> list[dict[str, Any]]:
    """The whole life of one view as a list of events in time order."""
    events: list[dict[str, Any]] = []
    t = start_ms
    events.append(base_event(view, "viewstart", t, {"preroll_requested": False}))
    t += rng.randint(100, 600)
    events.append(base_event(view, "playerready", t, {"player_startup_time": rng.uniform(50, 400)}))
    if rng.random() < 0.03:  # startup failure
        t += rng.randint(500, 3000)
        events.append(
            base_event(
                view, "error", t, {"error_family": "network", "error_code": "2", "fatal": True}
            )
        )
        return events
    if rng.random() < 0.05:  # exit before video start: nothing after playerready
        return events
    startup = rng.lognormvariate(7.0, 0.6)  # ms, median ~1.1 s
    t += int(startup)
    bitrate = rng.choice(LADDER_BPS[:2])
    events.append(
        base_event(
            view,
            "playing",
            t,
            {
                "video_startup_time": startup,
                "bitrate": bitrate,
                "resolution": {"width": HEIGHTS[bitrate] * 16 // 9, "height": HEIGHTS[bitrate]},
            },
        )
    )
    quartiles_sent: set[int] = set()
    watched = 0.0
    target = view["duration_ms"] * rng.choice([0.3, 0.6, 1.0, 1.0])
    while watched < target:
        step = min(heartbeat_ms, target - watched)
        t += int(step)
        watched += step
        view["position_ms"] = watched
        roll = rng.random()
        if roll < 0.08:
            events.append(
                base_event(view, "stall_start", t, {"buffer_length": 0, "bitrate": bitrate})
            )
            stall = rng.randint(300, 4000)
            t += stall
            events.append(base_event(view, "stall_end", t, {"stall_duration": stall}))
        elif roll < 0.16:
            new = rng.choice(LADDER_BPS)
            if new != bitrate:
                events.append(
                    base_event(
                        view,
                        "qualitychange",
                        t,
                        {
                            "bitrate": new,
                            "resolution": {"width": HEIGHTS[new] * 16 // 9, "height": HEIGHTS[new]},
                        },
                    )
                )
                bitrate = new
        elif roll < 0.19:
            events.append(
                base_event(
                    view,
                    "seek",
                    t,
                    {"from": watched, "to": watched + 5000, "seek_latency": rng.randint(100, 900)},
                )
            )
        for q in (25, 50, 75, 100):
            if q not in quartiles_sent and watched >= view["duration_ms"] * q / 100 * 0.999:
                quartiles_sent.add(q)
                events.append(base_event(view, "quartile", t, {"quartile": q}))
        events.append(
            base_event(
                view,
                "heartbeat",
                t,
                {"playing_time": watched, "bitrate": bitrate, "dropped_frames": 0},
            )
        )
    if rng.random() < 0.02:
        events.append(
            base_event(
                view, "error", t, {"error_family": "decoder", "error_code": "3", "fatal": True}
            )
        )
    else:
        events.append(
            base_event(
                view,
                "ended" if target >= view["duration_ms"] else "pause",
                t,
                {"playing_time": watched},
            )
        )
    return events


async def run(
    url: str, key: str | None, org_id: str, views: int, duration_s: float, speed: float, seed: int
) -> None:
    """Keep ``views`` views running in real time (``speed`` x faster) for ``duration_s``."""
    rng = random.Random(seed)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["X-API-Key"] = key
    sent = accepted = 0
    stop_at = time.monotonic() + duration_s
    async with aiohttp.ClientSession(headers=headers) as session:

        async def one_view() -> None:
            nonlocal sent, accepted
            while time.monotonic() < stop_at:
                view = new_view(rng, org_id)
                start_wall = time.time()
                script = view_script(rng, view, int(start_wall * 1000), 10_000)
                t0 = script[0]["event_time"]
                batch: list[dict[str, Any]] = []
                for ev in script:
                    due = start_wall + (ev["event_time"] - t0) / 1000 / speed
                    # The SDK stamps events when they happen; we replay at `speed`.
                    ev["event_time"] = ev["viewer_time"] = int(due * 1000)
                    delay = due - time.time()
                    if delay > 0:
                        if batch:
                            # Await first: "accepted += await ..." would lose updates
                            # made by other views while this one waits.
                            n = await post(session, url, batch)
                            accepted += n
                            sent += len(batch)
                            batch = []
                        await asyncio.sleep(delay)
                    batch.append(ev)
                    if time.monotonic() >= stop_at:
                        break
                if batch:
                    n = await post(session, url, batch)
                    accepted += n
                    sent += len(batch)

        await asyncio.gather(*(one_view() for _ in range(views)))
    print(f"sent {sent} events, {accepted} accepted")


async def post(session: aiohttp.ClientSession, url: str, batch: list[dict[str, Any]]) -> int:
    async with session.post(f"{url}/v1/events", json={"events": batch}) as response:
        if response.status in (202, 207, 400):
            body = await response.json()
            return int(body["accepted"])
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--key", default=None, help="ingest key (X-API-Key)")
    parser.add_argument("--org", default="demo")
    parser.add_argument("--views", type=int, default=20, help="concurrent views")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds")
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="speed-up over real time (1: heartbeats every 10 s and real start-up times)",
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(run(args.url, args.key, args.org, args.views, args.duration, args.speed, args.seed))


if __name__ == "__main__":
    main()
