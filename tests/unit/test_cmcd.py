"""CMCD v2 event mode: the RFC 8941 record parser, the compatibility traps of
reference/qoe-metrics.md §3.2, and recorded sessions mapped to view values."""

from __future__ import annotations

from typing import Any

import pytest

from ingest.cmcd import (
    CmcdError,
    Context,
    error_family,
    header_record,
    parse_record,
    split_records,
    to_events,
)
from ingest.validation import validate_event
from schemas import player_event_codec, player_event_reader
from tests.unit.test_view import T0, Run

CTX = Context(org_id="org", player="hlsjs", env="prod", app_name="site")


# --- parser -----------------------------------------------------------------------------


def test_every_value_type_of_the_key_table() -> None:
    record = parse_record(
        'bl=(6000),br=(4200;v 256;a),bs,cid="content \\"id\\" \\\\ 123",e=t,'
        'msd=812,nor=("seg-6.m4v" "seg-7.m4v";r="100-"),pr=1.25,sf=d,su=?0,'
        'ec=("E1" "E2"),ts=1764752430000,v=2'
    )
    assert record["bl"] == [(6000, {})]
    assert record["br"] == [(4200, {"v": True}), (256, {"a": True})]
    assert record["bs"] is True  # a bare key is TRUE
    assert record["su"] is False  # ?0 is FALSE
    assert record["cid"] == 'content "id" \\ 123'  # string escapes
    assert record["e"] == "t"  # tokens come back as plain strings
    assert isinstance(record["e"], str)
    assert record["msd"] == 812
    assert record["pr"] == 1.25  # decimal
    assert record["nor"] == [("seg-6.m4v", {}), ("seg-7.m4v", {"r": "100-"})]  # item params
    assert record["ec"] == [("E1", {}), ("E2", {})]
    assert record["ts"] == 1764752430000


@pytest.mark.parametrize(
    "text",
    [
        'cid="unterminated,e=t,ts=1,v=2',
        "e=t,ts=1,v=2,Bad=1",  # keys are lowercase
        "e=t,,ts=1",
        "e=(1 2,ts=1",
        "e=t ts=1",
        "e=t,ts=1é",
    ],
)
def test_bad_syntax_is_a_clear_per_record_error(text: str) -> None:
    with pytest.raises(CmcdError) as info:
        parse_record(text)
    assert info.value.code == "unparseable"
    assert info.value.message


def test_records_are_lines_and_a_trailing_lf_or_spaces_are_tolerated() -> None:
    body = "  e=t,ts=1,v=2  \ne=ps,sta=p,ts=2,v=2\n"  # @svta/cml-cmcd always appends LF
    assert split_records(body) == ["e=t,ts=1,v=2", "e=ps,sta=p,ts=2,v=2"]
    assert split_records("\n\n") == []


def test_header_shards_merge_into_one_record() -> None:
    line = header_record(
        {"CMCD-Session": 'sid="s1",v=2', "CMCD-Status": "bs", "CMCD-Request": "bl=(300)"}
    )
    assert line is not None
    assert parse_record(line) == {"bl": [(300, {})], "bs": True, "sid": "s1", "v": 2}
    assert header_record({"Content-Type": "x"}) is None


# --- mapping ----------------------------------------------------------------------------


def events_of(text: str) -> list[dict[str, Any]]:
    return to_events(parse_record(text), text, CTX)


@pytest.mark.parametrize(
    ("sta", "kinds"),
    [
        ("s", ["viewstart"]),
        ("p", ["playing"]),
        ("r", ["stall_start"]),
        ("k", ["seek", "stall_start"]),
        ("a", ["pause"]),
        ("e", ["ended"]),
        ("f", []),  # the error report (e=e) that comes with it is the failure
        ("q", ["view_end"]),
        ("w", []),
        ("d", []),
    ],
)
def test_play_state_changes_map_to_our_events(sta: str, kinds: list[str]) -> None:
    events = events_of(f'e=ps,sid="s1",sta={sta},ts=1000,v=2')
    assert [e["event_type"] for e in events] == kinds
    assert all(e["event_time"] == 1000 for e in events)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ('e=t,sid="s",ts=1', "missing"),  # v is required in event mode
        ('e=t,sid="s",ts=1,v=3', "unsupported_version"),
        ('sid="s",ts=1,v=2', "missing"),
        ('e=t,sid="s",v=2', "missing"),
        ("e=t,ts=1,v=2", "missing"),
        ('e=t,sid="s",ts="1",v=2', "missing"),  # an ill-typed required key is missing
    ],
)
def test_records_that_cannot_be_a_session_report_are_errors(text: str, code: str) -> None:
    with pytest.raises(CmcdError) as info:
        events_of(text)
    assert info.value.code == code


def test_events_without_qoe_meaning_are_ignored_not_errors() -> None:
    for e in ("rr", "m", "um", "b", "abs", "ce", "pr", "h", "c"):
        assert events_of(f'e={e},sid="s",ts=1,v=2,url="x"') == []
    assert events_of('e=t,sid="s",sta=a,ts=1,v=2') == []  # a paused interval report


def test_one_view_per_sid_and_content_and_dedupe_on_sid_and_sn() -> None:
    a1 = events_of('cid="c1",e=t,sid="s1",sn=1,sta=p,ts=1,v=2')[0]
    a1_again = events_of('cid="c1",e=t,sid="s1",sn=1,sta=p,ts=1,v=2')[0]
    a2 = events_of('cid="c1",e=t,sid="s1",sn=2,sta=p,ts=2,v=2')[0]
    b1 = events_of('cid="c2",e=t,sid="s1",sn=3,sta=p,ts=3,v=2')[0]
    other_session = events_of('cid="c1",e=t,sid="s2",sn=1,sta=p,ts=1,v=2')[0]
    assert a1["view_id"] == a2["view_id"] != b1["view_id"]
    assert other_session["view_id"] != a1["view_id"]
    assert a1["event_id"] == a1_again["event_id"]  # a retried record is the same event
    assert len({a1["event_id"], a2["event_id"], other_session["event_id"]}) == 3
    seek = events_of('cid="c1",e=ps,sid="s1",sn=4,sta=k,ts=4,v=2')
    assert len({e["event_id"] for e in seek}) == 2


def test_without_sn_the_record_text_identifies_retries() -> None:
    first = events_of('e=t,sid="s1",sta=p,ts=1,v=2')[0]
    assert first["event_id"] == events_of('e=t,sid="s1",sta=p,ts=1,v=2')[0]["event_id"]
    assert first["event_id"] != events_of('e=t,sid="s1",sta=p,ts=2,v=2')[0]["event_id"]


def test_values_units_and_labels() -> None:
    [hb] = events_of(
        'br=(4200;v 256;a),cid="c",dfa=7,e=t,pb=(3000;v 128;a),pt=29188,sf=e,sid="s",st=v,'
        "sta=p,ts=5,v=2"
    )
    assert hb["data"]["bitrate"] == 3_000_000  # pb (shown) wins over br (selected); kbps->bps
    assert hb["data"]["dropped_frames"] == 7
    assert hb["playback_time"] == 29188
    assert hb["player"] == {"name": "hlsjs"}
    assert hb["env"] == "prod"
    assert hb["video"] == {"id": "c", "stream_type": "vod"}
    assert hb["cmcd"]["sf"] == "e"  # HESP is accepted
    [bc] = events_of('br=(256;a 5000;v),e=bc,sid="s",ts=5,v=2')
    assert bc["data"]["new_bitrate"] == 5_000_000  # the video entry, wherever it is
    [playing] = events_of('e=ps,msd=812,sid="s",sta=p,ts=5,v=2')
    assert playing["data"]["video_startup_time"] == 812
    [live] = events_of('e=t,pt=1764752430000,sid="s",st=l,sta=p,ts=5,v=2')
    assert "playback_time" not in live  # live pt is an epoch, not a media position


def test_errors_fatal_only_with_the_fatal_state_and_a_family() -> None:
    [non_fatal] = events_of('e=e,ec=("fragLoadError"),sid="s",ts=1,v=2')
    expected = {"error_family": "network", "error_code": "fragLoadError", "fatal": False}
    assert non_fatal["data"] == expected
    [fatal] = events_of('e=ps,ec=("manifestLoadError"),sid="s",sta=f,ts=1,v=2')
    assert fatal["data"]["fatal"] is True
    assert fatal["data"]["error_family"] == "manifest"
    assert error_family(["CODEC_NOT_SUPPORTED"]) == "decode"
    assert error_family(["4001"]) == "other"


def test_a_fatal_error_is_the_error_report_of_the_fatal_or_starting_state() -> None:
    # hls.js: the fatal state, then the error report with the codes (two requests).
    assert events_of('e=ps,sid="s",sta=f,ts=1,v=2') == []
    [hlsjs] = events_of('e=e,ec=("manifestLoadError"),sid="s",sta=f,ts=2,v=2')
    assert hlsjs["data"] == {
        "error_family": "manifest",
        "error_code": "manifestLoadError",
        "fatal": True,
    }
    # dash.js 5.2: no fatal state, the error report while starting, a bare numeric code.
    dashjs = Context(org_id="org", player="dashjs")
    [record] = to_events(parse_record(t := 'e=e,ec=25,sid="s",sta=s,ts=1,v=2'), t, dashjs)
    assert record["data"] == {"error_family": "manifest", "error_code": "25", "fatal": True}
    [other_player] = events_of('e=e,ec=25,sid="s",sta=s,ts=1,v=2')
    assert other_player["data"]["error_family"] == "other"  # whose code 25? unknown
    # Shaka 5.2: an error report with no codes.
    [shaka] = events_of('e=e,sid="s",sta=f,ts=1,v=2')
    assert shaka["data"] == {"error_family": "other", "error_code": None, "fatal": True}
    # Playing, paused, waiting: the player may recover, the error is counted only.
    for sta in ("p", "a", "w", "r"):
        [error] = events_of(f'e=e,ec=("bufferStalledError"),sid="s",sta={sta},ts=1,v=2')
        assert error["data"]["fatal"] is False


def test_every_mapped_event_passes_the_collectors_validation() -> None:
    text = (
        'bl=(6000),br=(4200;v 256;a),cid="c",e=t,h="example.com",lb=(523;v 64;a),msd=812,'
        'mtp=(87000;v 49000;a),nor=("a.m4s"),pb=(4200;v 256;a),pt=29188,sf=d,sid="s",sn=2,'
        "st=v,sta=p,tb=(4200;v 256;a),tpb=(4200;v 256;a),ts=1795000000000,v=2"
    )
    [event] = events_of(text)
    result = validate_event(event, now_ms=1795000000000, org_id="org")
    assert isinstance(result, dict), result
    assert result["cmcd"]["br"] == 4200  # CMCD units kept in the cmcd field
    assert result["cmcd"]["nor"] == "a.m4s"
    assert '"tpb":[4200,256]' in (result["extra_json"] or "")  # keys our schema lacks are kept


# --- recorded sessions -> view values ------------------------------------------------------


def play(records: list[str]) -> Run:
    """Feed a CMCD session through the collector's mapping and validation, Avro, and the
    processor's view step, as the pipeline does."""
    run = Run()
    codec, reader = player_event_codec(), player_event_reader()
    for text in records:
        for raw in to_events(parse_record(text), text, CTX):
            raw["received_time"] = raw["event_time"]
            record = validate_event(raw, now_ms=raw["event_time"], org_id="org")
            assert isinstance(record, dict), record
            record["received_time"] = raw["event_time"]
            run.send(reader.decode(codec.encode(record)))
    return run


def rec(t: int, body: str, sn: int) -> str:
    return f'cid="movie",{body},sid="sess-1",sn={sn},ts={T0 + t},v=2'


def test_a_dashjs_like_session_gives_the_values_an_sdk_view_gives() -> None:
    run = play(
        [
            rec(0, "e=ps,sta=s", 0),
            rec(812, "br=(3000;v),e=ps,msd=812,sta=p", 1),
            rec(10_812, "br=(3000;v),dfa=0,e=t,sta=p", 2),
            rec(12_000, "e=ps,sta=r", 3),
            rec(13_500, "bs,bsd=(1500),e=ps,sta=p", 4),
            rec(13_500, "bs,bsd=(1500),e=ps,sta=p", 4),  # a retried record: counted once
            rec(15_000, "br=(5000;v),e=bc", 5),
            rec(20_000, "e=ps,sta=k", 6),
            rec(20_400, "e=ps,sta=p", 7),
            rec(25_000, "e=ps,sta=a", 8),
            rec(35_000, "e=ps,sta=p", 9),
            rec(40_000, "dfa=12,e=t,sta=p", 10),
            rec(45_000, "e=ps,sta=e", 11),
        ]
    )
    s = run.summary
    assert s["outcome"] == "played"
    assert s["end_reason"] == "ended"
    assert s["video_startup_time_ms"] == 812
    assert s["rebuffer_count"] == 1
    assert s["rebuffer_duration_ms"] == 1500
    assert s["seek_count"] == 1
    assert s["seek_wait_ms"] == 400
    assert s["upshift_count"] == 1
    assert s["downshift_count"] == 0
    # playing: 0.812-12 s, 13.5-20 s, 20.4-25 s, 35-45 s; paused 25-35 s is not watched.
    playing = (12_000 - 812) + (20_000 - 13_500) + (25_000 - 20_400) + (45_000 - 35_000)
    assert s["playing_time_ms"] == playing
    assert s["watch_time_ms"] == playing + 812 + 1500 + 400
    at_3m = (12_000 - 812) + (15_000 - 13_500)
    at_5m = (20_000 - 15_000) + (25_000 - 20_400) + 10_000
    bitrate = (3_000_000 * at_3m + 5_000_000 * at_5m) / playing
    assert s["average_bitrate_bps"] == pytest.approx(bitrate)
    assert s["dropped_frames"] == 12
    assert run.counter("duplicate_events") == 1


def test_startup_failure_and_exit_before_start() -> None:
    failed = play([rec(0, "e=ps,sta=s", 0), rec(3000, 'e=ps,ec=("manifestLoadError"),sta=f', 1)])
    assert failed.summary["outcome"] == "failed"
    assert failed.summary["failed_before_start"]
    assert failed.summary["error_family"] == "manifest"
    quit_early = play([rec(0, "e=ps,sta=s", 0), rec(2000, "e=ps,sta=q", 1)])
    assert quit_early.summary["end_reason"] == "exited"  # at once, no inactivity timeout
    assert quit_early.summary["outcome"] == "exited_before_start"
    assert quit_early.summary["exited_before_start"]
