"""The single-object codec: wire format per the Avro spec, golden bytes, evolution."""

from __future__ import annotations

import copy
import struct
from typing import Any

import fastavro
import pytest

from schemas import (
    AvroCodecError,
    SingleObjectCodec,
    UnknownSchemaError,
    load_schema,
    player_event_codec,
    player_event_reader,
    rejected_event_codec,
)
from schemas.codec import schema_fingerprint

RECORD: dict[str, Any] = {
    "event_id": "e-1",
    "event_type": "playing",
    "event_time": 1762333203911,
    "received_time": 1762333204000,
    "org_id": "org_abc123",
    "player_id": "web-main",
    "view_id": "3a61b24b",
    "session_id": "s",
    "viewer_id": "v",
    "data": {"bitrate": 2500000.0, "resolution": {"width": 1280, "height": 720}},
}
# Changing these bytes breaks every consumer that reads the topic: bump the schema
# deliberately (see schemas/README.md), then update.
GOLDEN_PLAYER_EVENT = (
    "c301f3af523474564a4b0206652d310e706c6179696e67008ef7f4b3ca6600c0f8f4b3ca6600146f72"
    "675f616263313233107765622d6d61696e10336136316232346202730276000000000000000000000002"
    "000000000200000000d0124341028014a00b000000000000000000000000000000000000000000000000"
    "000000000000"
)
GOLDEN_REJECTED = (
    "c301d06b25dc918bd960c0f8f4b3ca66000402146576656e745f747970650e6d697373696e6716697320"
    "726571756972656400047b7d"
)


def rabin_fingerprint64(data: bytes) -> int:
    """CRC-64-AVRO exactly as the Avro specification's reference code computes it."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp & 0xFFFFFFFFFFFFFFFF)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


def test_the_spec_fingerprint_of_null_matches() -> None:
    # Value published with the Avro specification's fingerprint test vectors.
    assert rabin_fingerprint64(b'"null"') == 0x63DD24E7CC258F8A


@pytest.mark.parametrize("name", ["player_event", "rejected_event"])
def test_header_is_marker_plus_little_endian_spec_fingerprint(name: str) -> None:
    schema = load_schema(name)
    canonical = fastavro.schema.to_parsing_canonical_form(schema).encode()
    expected = b"\xc3\x01" + struct.pack("<Q", rabin_fingerprint64(canonical))
    assert SingleObjectCodec(schema).header == expected
    assert schema_fingerprint(schema) == expected[2:]


def test_golden_bytes() -> None:
    assert player_event_codec().encode(RECORD).hex() == GOLDEN_PLAYER_EVENT
    dead_letter = {
        "received_time": 1762333204000,
        "org_id": None,
        "batch_index": 2,
        "errors": [{"field": "event_type", "code": "missing", "message": "is required"}],
        "event_json": "{}",
    }
    assert rejected_event_codec().encode(dead_letter).hex() == GOLDEN_REJECTED


def test_body_is_plain_avro_readable_by_any_avro_reader() -> None:
    import io

    value = player_event_codec().encode(RECORD)
    body = fastavro.schemaless_reader(io.BytesIO(value[10:]), load_schema("player_event"), None)
    assert body["view_id"] == "3a61b24b"
    assert body["data"]["resolution"] == {"width": 1280, "height": 720}


def test_reader_without_logical_types_returns_int_milliseconds() -> None:
    decoded = player_event_reader().decode(player_event_codec().encode(RECORD))
    assert decoded["event_time"] == 1762333203911
    assert decoded["received_time"] == 1762333204000
    assert (
        player_event_codec().decode(player_event_codec().encode(RECORD))["event_time"].year == 2025
    )


def test_values_from_an_older_schema_resolve_to_the_current_one() -> None:
    current = load_schema("player_event")
    older_json = copy.deepcopy(current)
    older_json["fields"] = [f for f in older_json["fields"] if f["name"] != "event_type_sent"]
    older = fastavro.parse_schema(older_json)
    old_writer = SingleObjectCodec(older)
    reader = SingleObjectCodec(current, older=[older])
    record = dict(RECORD.items())
    decoded = reader.decode(old_writer.encode(record))
    assert decoded["event_type_sent"] is None  # added later, filled from its default
    assert decoded["view_id"] == RECORD["view_id"]
    with pytest.raises(UnknownSchemaError):
        SingleObjectCodec(current).decode(old_writer.encode(record))


def test_values_written_with_player_event_v1_still_decode() -> None:
    v1_writer = SingleObjectCodec(load_schema("player_event.v1"))
    value = v1_writer.encode(dict(RECORD.items()))
    assert value[:10].hex() == "c3017f08892cdc61af33"  # the v1 header, as released
    for codec in (player_event_codec(), player_event_reader()):
        decoded = codec.decode(value)
        assert decoded["sequence"] is None
        assert decoded["data"]["reason"] is None
        assert decoded["data"]["bitrate"] == 2500000.0


@pytest.mark.parametrize(
    "value",
    [b"", b"\xc3", b"\x00\x01" + bytes(20), b"{}"],
)
def test_non_avro_values_are_refused(value: bytes) -> None:
    with pytest.raises(AvroCodecError):
        player_event_codec().decode(value)


def test_truncated_body_is_refused() -> None:
    with pytest.raises(AvroCodecError):
        player_event_codec().decode(player_event_codec().encode(RECORD)[:30])


def test_records_that_do_not_fit_are_refused() -> None:
    with pytest.raises(AvroCodecError):
        player_event_codec().encode({**RECORD, "event_time": "now"})
