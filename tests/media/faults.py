"""Fault specs carried in the URL path (``/f/<spec>/media/...``) and media path classification.

A spec is ``key=value`` items joined by commas, e.g. ``run=ab12,startdelay=800,hold=5``:

- ``run=ID``        groups requests in the server's record and for ``/_control`` calls;
- ``startdelay=MS`` delays every request for the first media segment (and the start of a
                    progressive MP4) by MS;
- ``hold=K``        holds every request for video segment K (1-based, every rendition; for
                    the MP4 the byte offset where segment K would start) until released;
- ``fail=CODE:TEXT`` answers CODE for every request whose media path contains TEXT;
- ``only=NAME``     serves a master playlist / MPD with only that rendition (e.g. 540p);
- ``lose=N``        (collector proxy) for each of the first N distinct batch bodies, forwards
                    it (so it is durable) but answers 503 the first time, as a collector
                    whose answer got lost would look to the player; its retry must not count.

Relative URLs in playlists keep the prefix, so every player carries the faults to every request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tests.media import catalog


class FaultSpecError(ValueError):
    pass


@dataclass(frozen=True)
class Faults:
    run: str = "default"
    startdelay_ms: int = 0
    hold_segment: int | None = None
    fail_status: int | None = None
    fail_match: str | None = None
    only: str | None = None
    lose_batches: int = 0

    @classmethod
    def parse(cls, spec: str) -> Faults:
        values: dict[str, str] = {}
        for item in filter(None, spec.split(",")):
            key, sep, value = item.partition("=")
            if not sep or not value:
                raise FaultSpecError(f"fault {item!r}: expected key=value")
            values[key] = value
        try:
            fail_status, fail_match = None, None
            if "fail" in values:
                code, sep, match = values.pop("fail").partition(":")
                if not sep or not match:
                    raise FaultSpecError("fail: expected CODE:TEXT, e.g. fail=404:seg_003")
                fail_status, fail_match = int(code), match
            faults = cls(
                run=values.pop("run", "default"),
                startdelay_ms=int(values.pop("startdelay", "0")),
                hold_segment=int(values["hold"]) if "hold" in values else None,
                fail_status=fail_status,
                fail_match=fail_match,
                only=values.pop("only", None),
                lose_batches=int(values.pop("lose", "0")),
            )
        except ValueError as exc:
            if isinstance(exc, FaultSpecError):
                raise
            raise FaultSpecError(f"fault spec {spec!r}: {exc}") from exc
        values.pop("hold", None)
        if values:
            raise FaultSpecError(f"unknown faults {sorted(values)} in {spec!r}")
        if faults.only is not None:
            catalog.rendition(faults.only)  # KeyError names the choices
        return faults


@dataclass(frozen=True)
class MediaPath:
    """What a media path is: a manifest, an init segment, or media segment N of a rendition."""

    kind: str  # manifest | init | video | audio | muxed | progressive | other
    rendition: str | None = None
    index: int | None = None  # 1-based segment number

    @property
    def carries_video(self) -> bool:
        return self.kind in ("video", "muxed")


_HLS_SEGMENT = re.compile(r"^hls/(?P<rend>[^/]+)/seg_(?P<n>\d+)\.ts$")
_DASH_SEGMENT = re.compile(r"^dash/chunk-(?P<rep>\d+)-(?P<n>\d+)\.m4s$")
_DASH_INIT = re.compile(r"^dash/init-(?P<rep>\d+)\.m4s$")


def _dash_rendition(rep: int) -> tuple[str, str | None]:
    if rep < len(catalog.RENDITIONS):
        return "video", catalog.RENDITIONS[rep].name
    return "audio", None


def classify(path: str) -> MediaPath:
    if path.endswith((".m3u8", ".mpd")):
        rend = path.split("/")[1] if path.startswith("hls/") and path.count("/") == 2 else None
        return MediaPath("manifest", rend)
    if match := _HLS_SEGMENT.match(path):
        # ffmpeg numbers HLS segments from 0.
        return MediaPath("muxed", match["rend"], int(match["n"]) + 1)
    if match := _DASH_SEGMENT.match(path):
        kind, rend = _dash_rendition(int(match["rep"]))
        return MediaPath(kind, rend, int(match["n"]))
    if match := _DASH_INIT.match(path):
        return MediaPath("init", _dash_rendition(int(match["rep"]))[1])
    if path.endswith(".mp4"):
        return MediaPath("progressive", catalog.MP4_RENDITION)
    return MediaPath("other")
