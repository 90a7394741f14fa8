"""What the generated test media declare: the ground truth the browser tests assert against.

Renditions are exact 16:9 (the trial: Chromium's players round odd sizes) and every
segment is one 2 s GOP, so "segment N" is the same stretch of content in every rendition.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rendition:
    name: str
    width: int
    height: int
    # Encoder target (x264 -b:v/-maxrate); the declared values below are what players see.
    video_kbps: int
    # HLS variant BANDWIDTH (video + audio, muxed TS) and DASH video @bandwidth, in bit/s.
    hls_bandwidth: int
    dash_bandwidth: int


RENDITIONS = (
    Rendition("360p", 640, 360, 500, 800_000, 700_000),
    Rendition("540p", 960, 540, 900, 1_400_000, 1_200_000),
    Rendition("720p", 1280, 720, 1500, 2_400_000, 2_000_000),
)
AUDIO_KBPS = 64
DASH_AUDIO_BANDWIDTH = 70_000
DURATION_S = 24
SEGMENT_S = 2
FPS = 25
# H.264 Main 3.1 + AAC-LC: what Debian's Chromium decodes (the trial; no proprietary H.265).
VIDEO_CODEC = "avc1.4d401f"
AUDIO_CODEC = "mp4a.40.2"
# The progressive MP4 is this rendition.
MP4_RENDITION = "540p"


def rendition(name: str) -> Rendition:
    for r in RENDITIONS:
        if r.name == name:
            return r
    raise KeyError(f"no rendition {name!r}; have {[r.name for r in RENDITIONS]}")


def by_height(height: int) -> Rendition:
    for r in RENDITIONS:
        if r.height == height:
            return r
    raise KeyError(f"no rendition {height}p")


def segment_count() -> int:
    return DURATION_S // SEGMENT_S
