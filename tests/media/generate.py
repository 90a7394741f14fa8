"""Generate the test media with ffmpeg: HLS (TS, 3 renditions), DASH (fMP4, 3 video
renditions + one audio) and a progressive MP4, cached under a hash of the parameters.

    python -m tests.media.generate [--out DIR]   # prints the media directory
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.media import catalog
from tests.media.catalog import RENDITIONS, Rendition

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CACHE = REPO / ".local" / "media"
MPD_NS = "urn:mpeg:dash:schema:mpd:2011"


# Bump when the ffmpeg commands change: the cache key is this and the catalog's parameters.
GENERATOR_VERSION = 1


def _params_key() -> str:
    params = (
        GENERATOR_VERSION,
        RENDITIONS,
        catalog.AUDIO_KBPS,
        catalog.DASH_AUDIO_BANDWIDTH,
        catalog.DURATION_S,
        catalog.SEGMENT_S,
        catalog.FPS,
        catalog.MP4_RENDITION,
    )
    return hashlib.sha256(repr(params).encode()).hexdigest()[:16]


def _ffmpeg(*args: str) -> None:
    binary = shutil.which("ffmpeg")
    if binary is None:
        raise RuntimeError("ffmpeg is not installed (apt-get install ffmpeg; .ci/run does it)")
    result = subprocess.run(
        [binary, "-hide_banner", "-loglevel", "error", "-y", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg {' '.join(args)} failed:\n{result.stderr}")


def _encode(r: Rendition, out: Path) -> None:
    gop = catalog.FPS * catalog.SEGMENT_S
    _ffmpeg(
        "-f", "lavfi", "-i", f"testsrc2=size={r.width}x{r.height}:rate={catalog.FPS}",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", str(catalog.DURATION_S),
        "-c:v", "libx264", "-profile:v", "main", "-level", "3.1", "-pix_fmt", "yuv420p",
        "-preset", "veryfast", "-b:v", f"{r.video_kbps}k", "-maxrate", f"{r.video_kbps}k",
        "-bufsize", f"{r.video_kbps * 2}k", "-g", str(gop), "-keyint_min", str(gop),
        "-sc_threshold", "0", "-force_key_frames", f"expr:gte(t,n_forced*{catalog.SEGMENT_S})",
        "-c:a", "aac", "-b:a", f"{catalog.AUDIO_KBPS}k", "-ac", "2",
        "-movflags", "+faststart",
        str(out),
    )  # fmt: skip


def _hls(sources: dict[str, Path], out: Path) -> None:
    for r in RENDITIONS:
        folder = out / r.name
        folder.mkdir(parents=True)
        _ffmpeg(
            "-i", str(sources[r.name]), "-c", "copy", "-f", "hls",
            "-hls_time", str(catalog.SEGMENT_S), "-hls_playlist_type", "vod",
            "-hls_segment_filename", str(folder / "seg_%03d.ts"),
            str(folder / "index.m3u8"),
        )  # fmt: skip
    # ffmpeg leaves CODECS out of the master (the trial), so we write it with what we declare.
    (out / "master.m3u8").write_text(hls_master(RENDITIONS))


def hls_master(renditions: tuple[Rendition, ...] | list[Rendition]) -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:3"]
    for r in renditions:
        lines.append(
            f"#EXT-X-STREAM-INF:BANDWIDTH={r.hls_bandwidth},RESOLUTION={r.width}x{r.height},"
            f'CODECS="{catalog.VIDEO_CODEC},{catalog.AUDIO_CODEC}",FRAME-RATE={catalog.FPS}'
        )
        lines.append(f"{r.name}/index.m3u8")
    return "\n".join(lines) + "\n"


def _dash(sources: dict[str, Path], out: Path) -> None:
    out.mkdir(parents=True)
    inputs: list[str] = []
    maps: list[str] = []
    for i, r in enumerate(RENDITIONS):
        inputs += ["-i", str(sources[r.name])]
        maps += ["-map", f"{i}:v"]
    _ffmpeg(
        *inputs, *maps, "-map", "0:a", "-c", "copy", "-f", "dash",
        "-seg_duration", str(catalog.SEGMENT_S), "-use_template", "1", "-use_timeline", "0",
        "-init_seg_name", "init-$RepresentationID$.m4s",
        "-media_seg_name", "chunk-$RepresentationID$-$Number%05d$.m4s",
        "-adaptation_sets", "id=0,streams=v id=1,streams=a",
        str(out / "manifest.mpd"),
    )  # fmt: skip
    # Declared bandwidths replace ffmpeg's (measured) ones: the truth the tests assert.
    ET.register_namespace("", MPD_NS)
    tree = ET.parse(out / "manifest.mpd")  # noqa: S314 (ffmpeg's output, not untrusted)
    for rep in tree.iter(f"{{{MPD_NS}}}Representation"):
        index = int(rep.attrib["id"])
        if index < len(RENDITIONS):
            rep.set("bandwidth", str(RENDITIONS[index].dash_bandwidth))
        else:
            rep.set("bandwidth", str(catalog.DASH_AUDIO_BANDWIDTH))
    tree.write(out / "manifest.mpd", xml_declaration=True, encoding="utf-8")


def generate(cache: Path = DEFAULT_CACHE) -> Path:
    """The media directory (hls/, dash/, progressive.mp4), generating it if needed."""
    target = cache / _params_key()
    if (target / "done").exists():
        return target
    work = cache / f"{target.name}.tmp"
    shutil.rmtree(work, ignore_errors=True)
    (work / "src").mkdir(parents=True)
    sources = {r.name: work / "src" / f"{r.name}.mp4" for r in RENDITIONS}
    for r in RENDITIONS:
        _encode(r, sources[r.name])
    _hls(sources, work / "hls")
    _dash(sources, work / "dash")
    shutil.copyfile(sources[catalog.MP4_RENDITION], work / "progressive.mp4")
    (work / "done").write_text("ok\n")
    shutil.rmtree(target, ignore_errors=True)
    work.rename(target)
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args(argv)
    sys.stdout.write(f"{generate(args.out)}\n")


if __name__ == "__main__":
    main()
