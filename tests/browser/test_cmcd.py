"""hls.js, dash.js and Shaka Player with no SDK at all, in CMCD v2 event mode (CTA-5004-B)
with our collector's /v1/cmcd endpoint as the event target, in headless Chromium through the
real collector, Kafka and processor: the per-view values on qoe.views against the truth the
media server injected and the page saw (sdk/e2e/truth.js).

Same tolerances as the SDK tests (test_players.py): startup within 150 ms and stall duration
within 250 ms of what was on screen; counts exact; bitrate equal to the declared bitrate of
the pinned rendition. Where a player's records cannot support a value, docs/cmcd.md says why
and the test asserts what the records do support.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest

from ingest.cmcd import parse_record, view_id
from tests.browser.conftest import Pipeline, record_accuracy
from tests.browser.harness import ScenarioRun, run_scenario
from tests.media import catalog

pytestmark = [pytest.mark.kafka, pytest.mark.browser, pytest.mark.timeout(150)]

STARTUP_TOLERANCE_MS = 150
STALL_TOLERANCE_MS = 250
# A reported rebuffering this short, with no frozen stretch on screen, is a flicker.
FLICKER_MS = 250
PINNED = "540p"
# Interval reports (e=t) every 2 s: the test processor ends a view after 4 s without events
# (tests/integration/pipeline.py), production after an hour.
INTERVAL_S = 2


@dataclass(frozen=True)
class Player:
    name: str
    source: str  # hls | dash
    manifest: str
    # What the player's records cannot support (docs/cmcd.md, "What each player reports"):
    # Both hls.js and dash.js report playing at the media element's `playing` event, which for
    # dash.js came up to 175 ms after the first frame was on screen (separate audio), and
    # hls.js reports starting at the media `play` event, which came up to 210 ms after the
    # app's play() on the loaded machine: their startup is checked against those events
    # (`startup_from`), the on-screen error goes to the accuracy table;
    # dash.js 5.2.1 reports rebuffering only on the media element's `waiting`, which does
    # not fire when the video stalls while the separate audio plays on (the stall test).
    # Shaka 5.2.12 sends no starting state and its msd only on the record after the first
    # playing state, so the view has no startup time (the records' msd is checked instead);
    # a failed load() sends no error; br is the variant's (video + audio) bandwidth; its
    # buffering observer now and then reports a rebuffering of tens of ms right after the
    # first playing state, with nothing frozen on screen (`rebuffer_flickers`).
    # "screen": the app's play() to the first frame; "play request" / "play event": from
    # there (dash.js: its starting state is at initialize(), just before the page's play();
    # Shaka's msd: from load(), just after it) to the media element's first `playing` event,
    # which Shaka dispatched up to 230 ms after the first frame when it seeked over the
    # start gap first.
    startup_from: str = "screen"
    reports_rebuffering: bool = True
    startup_on_view: bool = True
    reports_load_failure: bool = True
    rebuffer_flickers: bool = False
    variant_bitrate: bool = False

    @property
    def page(self) -> str:
        return f"cmcd-{self.name}.html"

    @property
    def label(self) -> str:
        """The accuracy table's row (the SDK tests' rows are the bare player names)."""
        return f"{self.name} (CMCD)"

    def declared_bitrate(self, rendition: str) -> int:
        r = catalog.rendition(rendition)
        if self.source == "hls":
            return r.hls_bandwidth  # BANDWIDTH of the muxed variant
        audio = catalog.DASH_AUDIO_BANDWIDTH if self.variant_bitrate else 0
        return r.dash_bandwidth + audio


PLAYERS = {
    p.name: p
    for p in (
        Player("hlsjs", "hls", "master.m3u8", startup_from="play event"),
        Player(
            "dashjs",
            "dash",
            "manifest.mpd",
            startup_from="play request",
            reports_rebuffering=False,
        ),
        Player(
            "shaka",
            "dash",
            "manifest.mpd",
            startup_on_view=False,
            startup_from="play request",
            reports_load_failure=False,
            variant_bitrate=True,
            rebuffer_flickers=True,
        ),
    )
}
ALL = list(PLAYERS)


@dataclass
class CmcdRun:
    result: ScenarioRun
    run: str
    view_id: str

    def records(self) -> list[str]:
        """Every CMCD record the player sent (the driver saw the requests)."""
        return [r for request in self.result.result.get("cmcd") or [] for r in request["records"]]

    def parsed(self) -> list[dict[str, Any]]:
        return [parse_record(text) for text in self.records()]

    def rebufferings(self) -> list[float]:
        """Durations (ms) of the rebuffering states reported after the first playing state."""
        unique = {r.get("sn"): r for r in self.parsed()}.values()  # a retried record once
        states = [(r["ts"], r["sta"]) for r in unique if r.get("e") == "ps" and "sta" in r]
        first = next(i for i, (_, sta) in enumerate(states) if sta == "p")
        out = []
        for (ts, sta), (next_ts, _) in zip(states[first:], states[first + 1 :], strict=False):
            if sta == "r":
                out.append(float(next_ts - ts))
        return out


def scenario(
    pipeline: Pipeline,
    player: Player,
    name: str,
    faults: dict[str, Any],
    params: dict[str, Any] | None = None,
    **driver: Any,
) -> CmcdRun:
    run = uuid.uuid4().hex[:12]
    spec = ",".join(f"{k}={v}" for k, v in {"run": run, **faults}.items())
    video = f"cmcd-{player.name}-{name}"
    query: dict[str, Any] = {
        "faults": spec,
        "video": video,
        "interval": INTERVAL_S,
        **(params or {}),
    }
    url = f"{pipeline.media_url}/demo/{player.page}?{urlencode(query)}"
    if not player.startup_on_view and name != "fatal":
        # Its msd rides on the next record (an interval report at the latest): wait for it.
        driver.setdefault("cmcdUntil", "msd=")
    result = run_scenario(
        {"url": url, "scenario": name, "server": pipeline.media_url, "run": run, **driver}
    )
    # The page exposes its CMCD session id; the collector's view is (org, sid, cid).
    assert len(result.view_ids) == 1, result.view_ids
    return CmcdRun(result, run, view_id(pipeline.org, result.view_ids[0], video))


class Summary(dict[str, Any]):
    """A qoe.views summary whose repr (in assertion messages) shows the QoE values only."""

    SHOWN = (
        "end_reason", "outcome", "video_startup_time_ms", "playing_time_ms", "rebuffer_count",
        "rebuffer_duration_ms", "seek_count", "seek_wait_ms", "failed", "error_family",
        "error_code", "completed", "average_bitrate_bps", "upshift_count", "downshift_count",
    )  # fmt: skip

    def __repr__(self) -> str:
        return repr({k: self.get(k) for k in self.SHOWN})


def one_view(pipeline: Pipeline, player: Player, cmcd: CmcdRun) -> Summary:
    # Captured by pytest: shown with a failure, for diagnosis.
    truth = cmcd.result.truth
    print(  # noqa: T201
        f"play request {cmcd.result.play_requested:.0f}, first frame {truth['firstFrame']}, "
        f"play events {truth.get('playEvents')}, playing events {truth['playing']}, "
        f"seeks {truth['seeks']}"
    )
    print("records the player sent:\n" + "\n".join(cmcd.records()))  # noqa: T201
    summary = Summary(pipeline.views.wait([cmcd.view_id])[cmcd.view_id])
    assert summary["org_id"] == pipeline.org
    # Where the view came from: the CMCD path, and the player named in the target URL.
    assert summary["player_id"] == "cmcd"
    assert summary["session_id"] == cmcd.result.view_ids[0]
    assert summary["labels"].get("player") == player.name, summary["labels"]
    return summary


def check_startup(player: Player, cmcd: CmcdRun, summary: dict[str, Any]) -> None:
    """On-screen startup errors go to the accuracy table; the players report starting and
    playing at media element events (docs/cmcd.md), so the value is checked against those
    events where they differ from the screen by more than the tolerance (``startup_from``)."""
    truth = cmcd.result.startup_ms
    seen = cmcd.result.truth
    start = seen["playEvents"][0] if player.startup_from == "play event" else None
    events = seen["playing"][0] - (start or cmcd.result.play_requested)
    startup = summary["video_startup_time_ms"]
    if not player.startup_on_view:
        # No starting state, and msd comes after the first playing state: the processor
        # takes a startup time only at the first frame (docs/cmcd.md), so the view has none.
        assert startup is None, summary
        assert not any(r.get("sta") == "s" for r in cmcd.parsed() if r.get("e") == "ps")
        first_playing = next(
            i for i, r in enumerate(cmcd.parsed()) if r.get("e") == "ps" and r.get("sta") == "p"
        )
        [startup] = [r["msd"] for r in cmcd.parsed() if "msd" in r]
        assert "msd" not in cmcd.parsed()[first_playing]
        label = "startup (msd in the records)"
    else:
        assert startup is not None, summary
        label = "startup"
    record_accuracy(player.label, label, startup, truth)
    if player.startup_from == "screen":
        assert abs(startup - truth) <= STARTUP_TOLERANCE_MS, (startup, truth)
        return
    record_accuracy(player.label, f"{label} vs {player.startup_from} to playing", startup, events)
    assert abs(startup - events) <= STARTUP_TOLERANCE_MS, (startup, events, truth)


def check_pinned_rendition(player: Player, summary: dict[str, Any]) -> None:
    assert summary["average_bitrate_bps"] == player.declared_bitrate(PINNED), summary
    assert (summary["upshift_count"], summary["downshift_count"]) == (0, 0), summary
    # CMCD has no picture-size key: the view cannot know the resolution.
    assert (summary["last_width"], summary["last_height"]) == (None, None)


def check_clean_play(summary: dict[str, Any]) -> None:
    assert summary["outcome"] == "played", summary
    assert not summary["failed"]
    assert summary["error_family"] is None
    assert summary["rebuffer_count"] == 0, summary
    assert summary["rebuffer_duration_ms"] == 0


@pytest.mark.parametrize("name", ALL)
def test_play_to_the_end(pipeline: Pipeline, name: str) -> None:
    player = PLAYERS[name]
    cmcd = scenario(pipeline, player, "play", {"only": PINNED}, {"rate": 2})
    summary = one_view(pipeline, player, cmcd)
    check_clean_play(summary)
    check_startup(player, cmcd, summary)
    check_pinned_rendition(player, summary)
    assert summary["end_reason"] == "ended"
    assert summary["completed"] is True
    # No seek was asked for, but hls.js seeks the media element itself around the first frame
    # (over the start gap), and reports it as seeking when it comes after `playing`.
    seen = cmcd.result.truth
    reported = [s for s in seen["seeks"] if s["start"] >= seen["playing"][0]]
    assert summary["seek_count"] == len(reported), seen["seeks"]
    # 24 s of content at 2x: playing time is wall time (about 12 s).
    assert summary["playing_time_ms"] == pytest.approx(catalog.DURATION_S * 1000 / 2, rel=0.15)
    assert not cmcd.result.stalls()


@pytest.mark.parametrize("name", ALL)
def test_startup_delay(pipeline: Pipeline, name: str) -> None:
    player = PLAYERS[name]
    delay_ms = 1200
    cmcd = scenario(
        pipeline, player, "startup", {"only": PINNED, "startdelay": delay_ms}, {"rate": 2}
    )
    assert cmcd.result.startup_ms >= delay_ms
    summary = one_view(pipeline, player, cmcd)
    check_clean_play(summary)
    check_startup(player, cmcd, summary)
    if player.startup_on_view:
        assert summary["video_startup_time_ms"] >= delay_ms


@pytest.mark.parametrize("name", ALL)
def test_mid_play_stall(pipeline: Pipeline, name: str) -> None:
    player = PLAYERS[name]
    hold_ms = 1500
    cmcd = scenario(
        pipeline,
        player,
        "stall",
        {"only": PINNED, "hold": 4},
        {"rate": 2, "buffer": 3},
        holdMs=hold_ms,
    )
    stalls = cmcd.result.stalls()
    assert len(stalls) == 1, cmcd.result.truth["gaps"]
    assert stalls[0] >= hold_ms
    summary = one_view(pipeline, player, cmcd)
    assert summary["outcome"] == "played"
    check_startup(player, cmcd, summary)
    check_pinned_rendition(player, summary)
    if not player.reports_rebuffering:
        # The picture froze for the held segment, the records never left "playing".
        states = [r.get("sta") for r in cmcd.parsed() if r.get("e") == "ps"]
        assert "r" not in states, states
        assert summary["rebuffer_count"] == 0, summary
        return
    flickers: list[float] = []
    if player.rebuffer_flickers:
        # Rebuffering the player reported right after its first playing state, for less than
        # a frame or two, with nothing frozen on screen: the view counts what was reported.
        flickers = [d for d in cmcd.rebufferings() if d < FLICKER_MS]
        assert len(cmcd.rebufferings()) == 1 + len(flickers), cmcd.rebufferings()
    assert summary["rebuffer_count"] == 1 + len(flickers), summary
    duration = summary["rebuffer_duration_ms"] - sum(flickers)
    record_accuracy(player.label, "stall", duration, stalls[0])
    assert abs(duration - stalls[0]) <= STALL_TOLERANCE_MS, (summary, stalls[0], flickers)


@pytest.mark.parametrize("name", ALL)
def test_fatal_error(pipeline: Pipeline, name: str) -> None:
    player = PLAYERS[name]
    cmcd = scenario(pipeline, player, "fatal", {"fail": f"404:{player.manifest}"}, {"fastfail": 1})
    assert cmcd.result.truth["firstFrame"] is None
    summary = one_view(pipeline, player, cmcd)
    if not player.reports_load_failure:
        # load() rejected, and Shaka's CMCD manager listens only to the player's `error`
        # events, which a failed load() does not dispatch: no error, no fatal state was sent.
        sent = cmcd.parsed()
        assert not [r for r in sent if r.get("e") == "e" or r.get("sta") == "f"], sent
        assert summary["failed"] is False, summary
        assert summary["outcome"] == "exited_before_start"
        return
    assert summary["failed"] is True, summary
    assert summary["failed_before_start"] is True
    assert summary["outcome"] == "failed"
    assert summary["end_reason"] == "failed"
    assert summary["error_family"] in {"network", "manifest"}, summary
