"""The compiled Avro reader of SingleObjectCodec returns exactly what fastavro returns.

``SingleObjectCodec.decode`` reads with code generated per writer schema (and resolved to
the reader schema) instead of ``fastavro.schemaless_reader``. These tests compare both on
random values of every project schema (with and without logical types), on values written
with older schemas, on synthetic schemas that use every Avro type and resolution rule, and
on corrupt bytes, which must raise AvroCodecError (or decode as fastavro decodes them).
"""

from __future__ import annotations

import functools
import io
import math
import random
import struct
import time
import uuid
from collections.abc import Callable
from importlib import resources
from typing import Any

import fastavro
import pytest

from bench.traffic import new_view, view_script
from ingest.validation import validate_event
from schemas import (
    AvroCodecError,
    SingleObjectCodec,
    load_schema,
    player_event_codec,
    player_event_reader,
)
from schemas.codec import MAGIC, _compile_reader, _without_logical_types, schema_fingerprint
from tests.events import event, sdk_batch

SCHEMAS = sorted(
    entry.name.removesuffix(".avsc")
    for entry in resources.files("schemas").iterdir()
    if entry.name.endswith(".avsc")
)

LONGS = [0, 1, -1, 63, -64, 64, -65, 8191, 8192, 2**31 - 1, -(2**31), 2**53, 2**63 - 1, -(2**63)]
INTS = [0, 1, -1, 63, 64, -65, 300, 2**31 - 1, -(2**31)]
DOUBLES = [0.0, -0.0, 1.5, -2.25, 1e308, -1e-308, 5e-324, math.inf, -math.inf, math.nan]
STRINGS = ["", "a", "prod", "é", "日本語", "😀 emoji", "x" * 63, "y" * 64, "z" * 200, "\x00nul"]
UNICODE = "aé日😀\u0000\u07ff\u0800\uffff\U0010ffff"


# --- comparing values ----------------------------------------------------------------------


def same(ours: Any, theirs: Any) -> bool:
    """Equal values of equal types, dict keys in the same order, NaN equal to NaN."""
    if type(ours) is not type(theirs):
        return False
    if isinstance(ours, float):
        if math.isnan(ours) or math.isnan(theirs):
            return math.isnan(ours) and math.isnan(theirs)
        return ours == theirs and math.copysign(1, ours) == math.copysign(1, theirs)
    if isinstance(ours, dict):
        return list(ours) == list(theirs) and all(same(ours[k], theirs[k]) for k in ours)
    if isinstance(ours, list):
        return len(ours) == len(theirs) and all(map(same, ours, theirs))
    if isinstance(ours, (str, bytes)):
        return ours == theirs
    # datetime, Decimal (1.0 == 1.00), UUID, ...: equal and printed the same
    return bool(ours == theirs) and repr(ours) == repr(theirs)


def reference_decode(codec: SingleObjectCodec, value: bytes) -> Any:
    """``SingleObjectCodec.decode`` as it was before the compiled reader: fastavro only."""
    writer = codec._readers[bytes(value[2:10])][0]
    return fastavro.schemaless_reader(io.BytesIO(value[10:]), writer, codec._reader_schema)


def outcome(decode: Callable[[bytes], Any], value: bytes) -> Any:
    try:
        return decode(value)
    except Exception as exc:  # noqa: BLE001 - comparing whatever either one raises
        return exc


def assert_decodes_as_fastavro(codec: SingleObjectCodec, value: bytes) -> bool:
    """Both decode to the same value (True), or fastavro fails and ours raises AvroCodecError
    (False: random bytes read as a string need not be UTF-8)."""
    theirs = outcome(lambda v: reference_decode(codec, v), value)
    if isinstance(theirs, Exception):
        with pytest.raises(AvroCodecError):
            codec.decode(value)
        return False
    ours = codec.decode(value)
    assert same(ours, theirs), (ours, theirs)
    return True


def assert_corrupt_or_same(codec: SingleObjectCodec, value: bytes) -> None:
    """Corrupt bytes raise AvroCodecError, or decode to what fastavro decodes."""
    ours = outcome(codec.decode, value)
    if isinstance(ours, Exception):
        assert isinstance(ours, AvroCodecError), repr(ours)
        return
    theirs = outcome(lambda v: reference_decode(codec, v), value)
    assert same(ours, theirs), (value, ours, theirs)


# --- random values -------------------------------------------------------------------------


def random_string(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.6:
        return rng.choice(STRINGS)
    if roll < 0.97:
        return "".join(rng.choices(UNICODE, k=rng.randint(0, 40)))
    return "".join(rng.choices(UNICODE, k=rng.randint(1000, 5000)))


def random_bytes(rng: random.Random) -> bytes:
    if rng.random() < 0.5:  # valid UTF-8 half the time, for bytes read as a string
        return random_string(rng).encode()
    return rng.randbytes(rng.choice([0, 1, 5, 70, 300]))


def random_count(rng: random.Random, depth: int) -> int:
    """Empty, short, or (at the top only) long arrays and maps."""
    roll = rng.random()
    if roll < 0.3:
        return 0
    if roll < 0.95 or depth > 1:
        return rng.randint(1, 4)
    return rng.randint(100, 300)


LOGICAL_VALUES: dict[str, Callable[[random.Random], Any]] = {
    "timestamp-millis": lambda rng: rng.choice(
        [0, -1, 1762333203911, rng.randint(-(10**13), 10**13)]
    ),
    "timestamp-micros": lambda rng: rng.randint(-(10**16), 10**16),
    "local-timestamp-millis": lambda rng: rng.randint(-(10**13), 10**13),
    "date": lambda rng: rng.randint(-700_000, 2_000_000),
    "time-millis": lambda rng: rng.randint(0, 86_399_999),
    "time-micros": lambda rng: rng.randint(0, 86_399_999_999),
    "uuid": lambda rng: str(uuid.UUID(int=rng.getrandbits(128))),
    "decimal": lambda rng: rng.randbytes(rng.randint(1, 8)),
}


def random_value(schema: Any, rng: random.Random, named: dict[str, Any], depth: int = 0) -> Any:
    """A random value of a parsed schema, as fastavro's writer takes it (no logical types)."""
    if isinstance(schema, list):
        if depth > 4 and "null" in schema:
            return None
        return random_value(rng.choice(schema), rng, named, depth + 1)
    if isinstance(schema, str):
        if schema in named:
            return random_value(named[schema], rng, named, depth + 1)
        return {
            "null": lambda: None,
            "boolean": lambda: rng.random() < 0.5,
            "int": lambda: rng.choice([*INTS, rng.randint(-(2**31), 2**31 - 1)]),
            "long": lambda: rng.choice([*LONGS, rng.randint(-(2**63), 2**63 - 1)]),
            "float": lambda: struct.unpack("<f", struct.pack("<f", rng.uniform(-1e6, 1e6)))[0],
            "double": lambda: rng.choice([*DOUBLES, rng.uniform(-1e9, 1e9)]),
            "string": lambda: random_string(rng),
            "bytes": lambda: random_bytes(rng),
        }[schema]()
    kind = schema["type"]
    logical = schema.get("logicalType")
    if logical in LOGICAL_VALUES:
        return LOGICAL_VALUES[logical](rng)
    if kind == "record":
        named[schema["name"]] = schema
        return {
            f["name"]: random_value(f["type"], rng, named, depth + 1)
            for f in schema["fields"]
            if "default" not in f or rng.random() < 0.7
        }
    if kind == "array":
        items = schema["items"]
        return [random_value(items, rng, named, depth + 1) for _ in range(random_count(rng, depth))]
    if kind == "map":
        values = schema["values"]
        return {
            random_string(rng): random_value(values, rng, named, depth + 1)
            for _ in range(random_count(rng, depth))
        }
    if kind == "enum":
        named[schema["name"]] = schema
        return rng.choice(schema["symbols"])
    if kind == "fixed":
        named[schema["name"]] = schema
        return rng.randbytes(schema["size"])
    return random_value(kind, rng, named, depth)


def write(schema: dict[str, Any], record: Any) -> bytes:
    """The single-object encoding of ``record``, written by fastavro with ``schema``."""
    plain = fastavro.parse_schema(_without_logical_types(schema))
    buf = io.BytesIO()
    buf.write(MAGIC + schema_fingerprint(schema))
    fastavro.schemaless_writer(buf, plain, record)
    return buf.getvalue()


def random_values(schema: dict[str, Any], seed: str, count: int) -> list[bytes]:
    rng = random.Random(seed)
    named = dict(schema["__named_schemas"])
    return [write(schema, random_value(schema, rng, named)) for _ in range(count)]


# --- the project's schemas -----------------------------------------------------------------


@functools.cache
def project_codecs(logical_types: bool) -> dict[str, SingleObjectCodec]:
    codecs = {
        name: SingleObjectCodec(load_schema(name), logical_types=logical_types) for name in SCHEMAS
    }
    codecs["player_event"] = SingleObjectCodec(
        load_schema("player_event"),
        older=[load_schema("player_event.v1")],
        logical_types=logical_types,
    )
    return codecs


@pytest.mark.parametrize("logical_types", [True, False])
@pytest.mark.parametrize("name", SCHEMAS)
def test_every_project_schema_gets_a_compiled_reader(name: str, logical_types: bool) -> None:
    codec = project_codecs(logical_types)[name]
    assert all(compiled is not None for _, compiled in codec._readers.values())


@pytest.mark.parametrize("logical_types", [True, False])
@pytest.mark.parametrize("name", SCHEMAS)
def test_random_values_decode_exactly_as_fastavro(name: str, logical_types: bool) -> None:
    codec = project_codecs(logical_types)[name]
    for value in random_values(load_schema(name), name, 300):
        assert assert_decodes_as_fastavro(codec, value)


@pytest.mark.parametrize("logical_types", [True, False])
def test_player_event_v1_values_resolve_exactly_as_fastavro(logical_types: bool) -> None:
    codec = project_codecs(logical_types)["player_event"]
    values = random_values(load_schema("player_event.v1"), "v1", 300)
    assert values[0][:10] == bytes.fromhex("c3017f08892cdc61af33")
    for value in values:
        assert assert_decodes_as_fastavro(codec, value)
        decoded = codec.decode(value)
        assert decoded["sequence"] is None
        assert decoded["data"] is None or decoded["data"]["player_state"] is None


def realistic_events() -> list[dict[str, Any]]:
    now = int(time.time() * 1000)
    rng = random.Random(7)
    raws = [*sdk_batch(now), event("error", now), event("quartile", now)]
    raws.append(event("heartbeat", now, cmcd={"br": 3000, "sid": "s", "bs": True}, extra=1))
    for _ in range(5):
        raws += view_script(rng, new_view(rng, "org_a"), now - 600_000, 10_000)
    records = [validate_event(raw, now_ms=now, org_id=None) for raw in raws]
    return [r for r in records if isinstance(r, dict)]


@pytest.mark.parametrize("logical_types", [True, False])
def test_realistic_events_decode_exactly_as_fastavro(logical_types: bool) -> None:
    codec = project_codecs(logical_types)["player_event"]
    for record in realistic_events():
        value = player_event_codec().encode(record)
        assert assert_decodes_as_fastavro(codec, value)
        # bytes-like values other than bytes decode the same
        assert same(codec.decode(memoryview(value)), codec.decode(value))
        assert same(codec.decode(bytearray(value)), codec.decode(value))


# --- every Avro type, logical types, recursion ---------------------------------------------

FEATURES: dict[str, Any] = {
    "type": "record",
    "name": "Features",
    "namespace": "t",
    "fields": [
        {"name": "n", "type": "null"},
        {"name": "b", "type": "boolean"},
        {"name": "i", "type": "int"},
        {"name": "l", "type": "long"},
        {"name": "f", "type": "float"},
        {"name": "d", "type": "double"},
        {"name": "s", "type": "string"},
        {"name": "y", "type": "bytes"},
        {"name": "e", "type": {"type": "enum", "name": "Colour", "symbols": ["RED", "GREEN"]}},
        {"name": "e2", "type": ["null", "Colour"]},
        {"name": "x", "type": {"type": "fixed", "name": "Four", "size": 4}},
        {"name": "x0", "type": {"type": "fixed", "name": "Zero", "size": 0}},
        {"name": "a", "type": {"type": "array", "items": "long"}},
        {"name": "aa", "type": {"type": "array", "items": {"type": "array", "items": "string"}}},
        {"name": "m", "type": {"type": "map", "values": ["null", "double", "string"]}},
        {"name": "mm", "type": {"type": "map", "values": {"type": "map", "values": "Four"}}},
        {"name": "u", "type": ["null", "int", "long", "string", "bytes", "Colour", "Four"]},
        {"name": "u2", "type": ["string", "null"]},
        {"name": "u3", "type": ["boolean"]},
        {
            "name": "pts",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "Point",
                    "fields": [
                        {"name": "px", "type": "double"},
                        {"name": "py", "type": ["null", "float"], "default": None},
                    ],
                },
            },
        },
        {"name": "pt", "type": ["null", "Point"]},
        {
            "name": "list",
            "type": {
                "type": "record",
                "name": "Node",
                "fields": [
                    {"name": "value", "type": "int"},
                    {"name": "next", "type": ["null", "Node"]},
                ],
            },
        },
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "tus", "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}]},
        {"name": "lts", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "tm", "type": {"type": "int", "logicalType": "time-millis"}},
        {"name": "tu", "type": {"type": "long", "logicalType": "time-micros"}},
        {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
        {
            "name": "dec",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 30, "scale": 3},
        },
        {"name": "odd", "type": {"type": "int", "logicalType": "timestamp-millis"}},
        {"name": "unknown", "type": {"type": "long", "logicalType": "no-such-type"}},
    ],
}


@pytest.mark.parametrize("logical_types", [True, False])
def test_every_avro_type_decodes_exactly_as_fastavro(logical_types: bool) -> None:
    schema = fastavro.parse_schema(FEATURES)
    codec = SingleObjectCodec(schema, logical_types=logical_types)
    assert all(compiled is not None for _, compiled in codec._readers.values())
    decoded = sum(assert_decodes_as_fastavro(codec, v) for v in random_values(schema, "f", 400))
    assert decoded == 400


def test_an_unsupported_schema_falls_back_to_fastavro() -> None:
    # A block count of zero-byte items cannot be checked against the bytes left: fastavro.
    schema = fastavro.parse_schema(
        {
            "type": "record",
            "name": "Nulls",
            "fields": [{"name": "a", "type": {"type": "array", "items": "null"}}],
        }
    )
    codec = SingleObjectCodec(schema)
    assert all(compiled is None for _, compiled in codec._readers.values())
    assert codec.decode(codec.encode({"a": [None, None]})) == {"a": [None, None]}
    with pytest.raises(AvroCodecError):
        codec.decode(codec.header + b"\x04")


def test_a_schema_too_deep_for_pythons_compiler_falls_back_to_fastavro() -> None:
    kind: Any = "long"
    for _ in range(30):  # more nested loops than Python compiles in one function
        kind = {"type": "array", "items": kind}
    codec = SingleObjectCodec(fastavro.parse_schema(record("Deep", field("a", kind))))
    assert all(compiled is None for _, compiled in codec._readers.values())
    assert codec.decode(codec.encode({"a": [[[]]]})) == {"a": [[[]]]}


# --- blocks with negative counts (a writer may emit them; fastavro never does) --------------

BLOCKS = fastavro.parse_schema(
    {
        "type": "record",
        "name": "Blocks",
        "fields": [
            {"name": "a", "type": {"type": "array", "items": "long"}},
            {"name": "m", "type": {"type": "map", "values": "string"}},
            {"name": "z", "type": "long"},
        ],
    }
)


@pytest.mark.parametrize(
    "body",
    [
        b"\x00\x00\x02",  # empty array, empty map
        b"\x03\x04\x02\x04\x00\x00\x02",  # array block of -2 items, 2 bytes: [1, 2]
        b"\x02\x02\x03\x04\x04\x06\x00\x00\x02",  # blocks of 1, then -2 items: [1, 2, 3]
        b"\x00\x01\x06\x02k\x02v\x00\x02",  # map block of -1 entry, 6 bytes
        b"\x00\x02\x02a\x02x\x01\x06\x02b\x02y\x00\x02",  # map blocks of 1 and -1
        b"\x01\x7f\x02\x00\x00\x02",  # wrong block size: unused, as by fastavro
    ],
)
def test_negative_block_counts_decode_as_fastavro(body: bytes) -> None:
    codec = SingleObjectCodec(BLOCKS)
    assert codec._readers[codec.header[2:]][1] is not None
    assert assert_decodes_as_fastavro(codec, codec.header + body)


# --- schema resolution ---------------------------------------------------------------------


def record(name: str, *fields: dict[str, Any], namespace: str = "r") -> dict[str, Any]:
    return {"type": "record", "name": name, "namespace": namespace, "fields": list(fields)}


def field(name: str, kind: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": kind, **extra}


ENUM_W = {"type": "enum", "name": "E", "symbols": ["A", "B", "C"]}
ENUM_R = {"type": "enum", "name": "E", "symbols": ["C", "A", "Z"], "default": "Z"}
INNER_W = record("Inner", field("keep", "int"), field("drop", "string"))
INNER_R = record("Inner", field("added", "string", default="x"), field("keep", "long"))
RESOLUTIONS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "promotions": (
        record(
            "P",
            field("il", "int"),
            field("if", "int"),
            field("id", "int"),
            field("lf", "long"),
            field("ld", "long"),
            field("fd", "float"),
            field("sb", "string"),
            field("bs", "bytes"),
        ),
        record(
            "P",
            field("il", "long"),
            field("if", "float"),
            field("id", "double"),
            field("lf", "float"),
            field("ld", "double"),
            field("fd", "double"),
            field("sb", "bytes"),
            field("bs", "string"),
        ),
    ),
    "fields reordered, skipped and defaulted": (
        record(
            "F",
            field("a", "long"),
            field("gone_s", "string"),
            field("gone_arr", {"type": "array", "items": INNER_W}),
            field("gone_map", {"type": "map", "values": ["null", "double"]}),
            field("gone_u", ["null", "string", "long", "Inner"]),
            field("gone_e", ENUM_W),
            field("gone_x", {"type": "fixed", "name": "X", "size": 3}),
            field("gone_ts", {"type": "long", "logicalType": "timestamp-millis"}),
            field("b", ["null", "string"]),
            field("inner", "Inner"),
            field("old_name", "float"),
        ),
        record(
            "F",
            field("inner", INNER_R),
            field("new_null", ["null", "string"], default=None),
            field("b", ["null", "string"], default=None),
            field("new_list", {"type": "array", "items": "long"}, default=[1, 2]),
            field("new_map", {"type": "map", "values": "long"}, default={"k": 1}),
            field("new_int", "int", default=7),
            field("a", "long"),
            field("renamed", "double", aliases=["old_name"]),
            field("no_writer", "double", aliases=["elsewhere"], default=0.5),
        ),
    ),
    "enums with a reader default": (
        record("En", field("e", ENUM_W), field("eu", ["null", "E"])),
        record("En", field("e", ENUM_R), field("eu", ["null", "E"])),
    ),
    "unions to unions, to non-unions and back": (
        record(
            "U",
            field("wider", ["null", "int"]),
            field("first_match", ["null", "int", "string"]),
            field("to_plain", ["long"]),
            field("from_plain", "int"),
            field("reordered", ["string", "null", "long"]),
        ),
        record(
            "U",
            field("wider", ["null", "string", "long"]),
            field("first_match", ["null", "double", "long", "string"]),
            field("to_plain", "double"),
            field("from_plain", ["null", "string", "double", "long"]),
            field("reordered", ["null", "long", "string"]),
        ),
    ),
    "records matched by alias and short name": (
        record("Old", field("r", record("In", field("v", "int"), namespace="w")), namespace="w"),
        {
            **record(
                "New",
                field("r", {**record("In", field("v", "long")), "aliases": ["w.In"]}),
                namespace="x",
            ),
            "aliases": ["w.Old"],
        },
    ),
}


@pytest.mark.parametrize("logical_types", [True, False])
@pytest.mark.parametrize("case", RESOLUTIONS)
def test_resolution_returns_what_fastavro_returns(case: str, logical_types: bool) -> None:
    writer_json, reader_json = RESOLUTIONS[case]
    writer, reader = fastavro.parse_schema(writer_json), fastavro.parse_schema(reader_json)
    codec = SingleObjectCodec(reader, older=[writer], logical_types=logical_types)
    assert all(compiled is not None for _, compiled in codec._readers.values())
    decoded = sum(assert_decodes_as_fastavro(codec, v) for v in random_values(writer, case, 300))
    assert decoded > 100  # the others: random bytes that are not UTF-8, read as a string


def test_a_writer_branch_the_reader_lacks_is_an_avro_codec_error() -> None:
    writer = fastavro.parse_schema(record("L", field("u", ["null", "string", "long"])))
    reader = fastavro.parse_schema(record("L", field("u", ["null", "string"])))
    codec = SingleObjectCodec(reader, older=[writer])
    old = SingleObjectCodec(writer)
    assert codec.decode(old.encode({"u": "s"})) == {"u": "s"}
    with pytest.raises(AvroCodecError, match="cannot resolve"):
        codec.decode(old.encode({"u": 5}))  # fastavro: SchemaResolutionError, not caught


def test_compiled_readers_are_built_once_per_writer_schema() -> None:
    schema = load_schema("player_event")
    assert _compile_reader(schema, schema) is not None  # identical: read without resolution
    codec = project_codecs(False)["player_event"]
    readers = {id(compiled) for _, compiled in codec._readers.values()}
    assert len(readers) == 2


# --- corrupt input -------------------------------------------------------------------------


def corpus() -> list[tuple[SingleObjectCodec, bytes]]:
    """A few valid values of every schema, small enough to truncate at every byte."""
    cases: list[tuple[SingleObjectCodec, bytes]] = []
    for logical_types in (True, False):
        codecs = project_codecs(logical_types)
        for name in SCHEMAS:
            small = [v for v in random_values(load_schema(name), name, 40) if len(v) < 1500]
            cases += [(codecs[name], v) for v in small[:6]]
        v1 = [v for v in random_values(load_schema("player_event.v1"), "c", 40) if len(v) < 1500]
        cases += [(codecs["player_event"], v) for v in v1[:6]]
        features = SingleObjectCodec(fastavro.parse_schema(FEATURES), logical_types=logical_types)
        small = [v for v in random_values(features.schema, "corrupt", 60) if len(v) < 1500]
        cases += [(features, v) for v in small[:6]]
    return cases


def test_every_truncation_is_an_avro_codec_error() -> None:
    for codec, value in corpus():
        for end in range(len(value)):
            with pytest.raises(AvroCodecError):
                codec.decode(value[:end])


def test_random_byte_flips_raise_avro_codec_error_or_decode_as_fastavro() -> None:
    rng = random.Random(3)
    for codec, value in corpus():
        for _ in range(60):
            corrupt = bytearray(value)
            for _ in range(rng.randint(1, 3)):
                corrupt[rng.randrange(10, len(corrupt))] = rng.randrange(256)
            assert_corrupt_or_same(codec, bytes(corrupt))


LONG_RECORD = fastavro.parse_schema(record("One", field("v", "long")))
STRING_RECORD = fastavro.parse_schema(record("Str", field("v", "string")))


@pytest.mark.parametrize(
    ("schema", "body"),
    [
        (LONG_RECORD, b"\xff" * 10 + b"\x01"),  # varint of 11 bytes
        (LONG_RECORD, b"\xff" * 9 + b"\x7f"),  # 10 bytes, beyond 64 bits
        (LONG_RECORD, b"\x80" * 200),  # never ends
        (STRING_RECORD, b"\x01abc"),  # negative length
        (STRING_RECORD, b"\xfe\xff\xff\xff\xff\xff\xff\xff\xff\x01"),  # huge length
        (STRING_RECORD, b"\x06\xff\xfe\xfd"),  # not UTF-8
        (STRING_RECORD, b"\x06\xed\xa0\x80"),  # a surrogate
        (BLOCKS, b"\xfe\xff\xff\xff\xff\xff\xff\xff\xff\x01\x02"),  # huge block count
        (BLOCKS, b"\x02\x02" * 3),  # array that never ends
        (fastavro.parse_schema(FEATURES), b"\x02"),  # boolean 2, via the first fields
        (fastavro.parse_schema(record("U1", field("u", ["null", "long"]))), b"\x04"),
        (fastavro.parse_schema(record("U2", field("u", ["null", "long"]))), b"\x01"),
        (fastavro.parse_schema(record("En2", field("e", ENUM_W))), b"\x06"),
        (fastavro.parse_schema(record("En3", field("e", ENUM_W))), b"\x01"),
        (
            fastavro.parse_schema(
                record("Ts", field("t", {"type": "long", "logicalType": "timestamp-millis"}))
            ),
            b"\xfe\xff\xff\xff\xff\xff\xff\xff\xff\x01",  # datetime out of range
        ),
    ],
)
def test_corrupt_values_are_avro_codec_errors(schema: dict[str, Any], body: bytes) -> None:
    codec = SingleObjectCodec(schema)
    assert codec._readers[codec.header[2:]][1] is not None
    with pytest.raises(AvroCodecError):
        codec.decode(codec.header + body)


def test_deep_recursion_is_an_avro_codec_error() -> None:
    node = record("Node", field("value", "int"), field("next", ["null", "Node"]), namespace="deep")
    codec = SingleObjectCodec(fastavro.parse_schema(node))
    assert codec._readers[codec.header[2:]][1] is not None
    shallow = codec.header + b"\x02\x02" * 50 + b"\x02\x00"
    assert assert_decodes_as_fastavro(codec, shallow)
    with pytest.raises(AvroCodecError):
        codec.decode(codec.header + b"\x02\x02" * 100_000 + b"\x02\x00")


def test_bytes_after_the_value_are_ignored_as_by_fastavro() -> None:
    codec = project_codecs(False)["player_event"]
    value = player_event_codec().encode(realistic_events()[0])
    assert_decodes_as_fastavro(codec, value + b"\x00\xff trailing")
    assert same(codec.decode(value + b"\x00\xff trailing"), codec.decode(value))


# --- projections (SingleObjectCodec(fields=...)) ---------------------------------------------


def test_the_known_view_reader_returns_exactly_those_fields_of_a_full_decode() -> None:
    from schemas.codec import PLAYER_EVENT_KNOWN_VIEW_FIELDS, player_event_known_view_reader

    known, full = player_event_known_view_reader(), player_event_reader()
    assert all(compiled is not None for _, compiled in known._readers.values())
    values = [player_event_codec().encode(r) for r in realistic_events()]
    values += random_values(load_schema("player_event"), "projection", 200)
    values += random_values(load_schema("player_event.v1"), "projection-v1", 200)
    for value in values:
        whole = full.decode(value)
        part = known.decode(value)
        assert list(part) == list(PLAYER_EVENT_KNOWN_VIEW_FIELDS)
        assert same(part, {name: whole[name] for name in PLAYER_EVENT_KNOWN_VIEW_FIELDS})
    # What it skips is still checked: a value cut short is an error, not a partial record.
    with pytest.raises(AvroCodecError):
        known.decode(values[0][:-3])


def known_view_fields(whole: dict[str, Any]) -> dict[str, Any]:
    """What the section reader returns of a fully decoded event."""
    from schemas.codec import PLAYER_EVENT_KNOWN_VIEW_DATA_FIELDS, PLAYER_EVENT_KNOWN_VIEW_FIELDS

    part = {name: whole[name] for name in PLAYER_EVENT_KNOWN_VIEW_FIELDS}
    if part["data"] is not None:
        part["data"] = {
            k: v for k, v in part["data"].items() if k in PLAYER_EVENT_KNOWN_VIEW_DATA_FIELDS
        }
    return part


def test_the_section_reader_reads_head_and_tail_as_the_known_view_reader() -> None:
    from schemas import player_event_sections

    sections, full = player_event_sections(), player_event_reader()
    values = [player_event_codec().encode(r) for r in realistic_events()]
    values += random_values(load_schema("player_event"), "sections", 300)
    for value in values:
        head = sections.head(value)
        assert head is not None
        record, pos = head
        assert list(record) == ["event_id", "event_type", "event_time", "received_time", "view_id"]
        end = sections.middle_end(value, pos)
        assert pos <= end < len(value)
        record.update(sections.tail(value, end))
        assert same(record, known_view_fields(full.decode(value)))


def test_a_middle_found_again_byte_for_byte_ends_where_parsing_it_ends() -> None:
    # The batch step skips a view's middle by comparing it with the last one it parsed:
    # the same bytes at the same place are the same fields, so the tail starts after them.
    from schemas import player_event_sections

    sections = player_event_sections()
    rng = random.Random(5)
    view = new_view(rng, "org")
    raw = view_script(rng, view, int(time.time() * 1000) - 60_000, 10_000)
    now = int(time.time() * 1000)
    values = [player_event_codec().encode(validate_event(e, now_ms=now, org_id=None)) for e in raw]
    middles = set()
    for value in values:
        head = sections.head(value)
        assert head is not None
        _, pos = head
        middles.add(value[pos : sections.middle_end(value, pos)])
    assert len(middles) == 1  # one view: its session, device, player and video never change
    (middle,) = middles
    # ...and a different middle (another device) of another length is parsed, not skipped.
    other = dict(raw[1], device={"category": "tv", "name": "A much longer device name"})
    value = player_event_codec().encode(validate_event(other, now_ms=now, org_id=None))
    head = sections.head(value)
    assert head is not None
    assert not value.startswith(middle, head[1])
    end = sections.middle_end(value, head[1])
    assert end - head[1] != len(middle)


def test_the_section_reader_leaves_other_writer_schemas_to_the_codec() -> None:
    from schemas import player_event_sections

    sections = player_event_sections()
    for value in random_values(load_schema("player_event.v1"), "sections-v1", 50):
        assert sections.head(value) is None
        assert player_event_reader().decode(value)["view_id"] is not None


def test_a_section_reader_value_cut_short_is_an_error_not_a_partial_record() -> None:
    from schemas import player_event_sections

    sections = player_event_sections()
    value = player_event_codec().encode(realistic_events()[0])
    head = sections.head(value)
    assert head is not None
    end = sections.middle_end(value, head[1])
    with pytest.raises(AvroCodecError):
        sections.tail(value[:-3], end)
    with pytest.raises(AvroCodecError):
        sections.middle_end(value[: end - 2], head[1])
    with pytest.raises(AvroCodecError):
        sections.head(value[: head[1] - 2])


def test_a_section_reader_needs_its_key_among_the_fields() -> None:
    from schemas import SectionReader

    with pytest.raises(ValueError, match="key"):
        SectionReader(load_schema("player_event"), ("event_id", "data"), key="view_id")
    with pytest.raises(ValueError, match="no field nope"):
        SectionReader(
            load_schema("player_event"),
            ("view_id", "data"),
            key="view_id",
            nested={"data": ["nope"]},
        )


def test_a_projection_of_a_field_the_schema_lacks_is_refused() -> None:
    with pytest.raises(ValueError, match="no field nope"):
        SingleObjectCodec(load_schema("player_event"), fields=("event_id", "nope"))
