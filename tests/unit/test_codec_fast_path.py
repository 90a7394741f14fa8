"""The compiled Avro writer of SingleObjectCodec writes exactly what fastavro writes.

``SingleObjectCodec.encode`` uses a writer compiled from the schema and falls back to
fastavro for any value it does not handle. These tests compare it with fastavro itself,
byte for byte, on random records of every schema, on realistic events, and on wrong values
(which must still fail, or succeed, exactly as they do with fastavro).
"""

from __future__ import annotations

import copy
import io
import math
import random
import time
from collections import OrderedDict
from collections.abc import Callable
from importlib import resources
from typing import Any

import fastavro
import pytest

from ingest.validation import validate_event
from schemas import AvroCodecError, SingleObjectCodec, load_schema, player_event_codec
from schemas.codec import _Unsupported
from tests.events import event, sdk_batch

SCHEMAS = sorted(
    entry.name.removesuffix(".avsc")
    for entry in resources.files("schemas").iterdir()
    if entry.name.endswith(".avsc")
)

LONGS = [0, 1, -1, 63, 64, -64, -65, 8191, 8192, 2**31 - 1, -(2**31), 2**53, 2**63 - 1, -(2**63)]
INTS = [0, 1, -1, 63, 64, -65, 300, 2**31 - 1, -(2**31)]
DOUBLES = [0.0, -0.0, 1.5, -2.25, 1e308, -1e-308, 5e-324, math.inf, -math.inf, math.nan]
STRINGS = ["", "a", "prod", "é", "日本語", "😀 emoji", "x" * 63, "y" * 64, "z" * 200, "\x00nul"]


def reference_encode(codec: SingleObjectCodec, record: Any) -> bytes:
    """``SingleObjectCodec.encode`` as it was before the compiled writer: fastavro only."""
    buf = io.BytesIO()
    buf.write(codec.header)
    try:
        fastavro.schemaless_writer(buf, codec.schema, record, strict_allow_default=True)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise AvroCodecError("does not match") from exc
    return buf.getvalue()


def outcome(encode: Callable[[Any], bytes], record: Any) -> bytes | type[BaseException]:
    """The bytes written, or the type of what was raised (e.g. fastavro's OverflowError)."""
    try:
        return encode(record)
    except Exception as exc:  # noqa: BLE001 - comparing whatever either one raises
        return type(exc)


def same_as_fastavro(codec: SingleObjectCodec, record: Any) -> bool:
    ours = outcome(codec.encode, copy.deepcopy(record))
    return ours == outcome(lambda r: reference_encode(codec, r), record)


def random_value(schema: Any, rng: random.Random, named: dict[str, Any]) -> Any:
    if isinstance(schema, list):
        return random_value(rng.choice(schema), rng, named)
    if isinstance(schema, str):
        if schema in named:
            return random_value(named[schema], rng, named)
        return {
            "null": lambda: None,
            "boolean": lambda: rng.random() < 0.5,
            "int": lambda: rng.choice([*INTS, rng.randint(-(2**31), 2**31 - 1)]),
            "long": lambda: rng.choice([*LONGS, rng.randint(-(2**63), 2**63 - 1)]),
            "double": lambda: rng.choice([*DOUBLES, rng.uniform(-1e9, 1e9)]),
            "string": lambda: rng.choice(STRINGS),
        }[schema]()
    kind = schema["type"]
    if kind == "record":
        named[schema["name"]] = schema
        return {
            f["name"]: random_value(f["type"], rng, named)
            for f in schema["fields"]
            if "default" not in f or rng.random() < 0.7
        }
    if kind == "array":
        return [random_value(schema["items"], rng, named) for _ in range(rng.randint(0, 3))]
    return random_value(kind, rng, named)


@pytest.mark.parametrize("name", SCHEMAS)
def test_every_project_schema_gets_a_compiled_writer(name: str) -> None:
    assert SingleObjectCodec(load_schema(name))._writer is not None


@pytest.mark.parametrize("name", SCHEMAS)
def test_random_records_encode_exactly_as_fastavro(name: str) -> None:
    codec = SingleObjectCodec(load_schema(name))
    rng = random.Random(name)
    fallbacks = 0
    for _ in range(500):
        record = random_value(codec.schema, rng, dict(codec.schema["__named_schemas"]))
        assert same_as_fastavro(codec, record), record
        try:
            codec._writer(bytearray(), record)  # type: ignore[misc]
        except _Unsupported:
            fallbacks += 1
    # Random values of the right types are the compiled writer's to write, not fastavro's.
    assert fallbacks == 0


def test_realistic_events_encode_exactly_as_fastavro() -> None:
    codec = player_event_codec()
    now = int(time.time() * 1000)
    raws = [*sdk_batch(now), event("error", now), event("quartile", now)]
    raws.append(event("qualitychange", now, data={"resolution": {"width": 1, "height": 2}}))
    raws.append(event("heartbeat", now, cmcd={"br": 3000, "sid": "s", "bs": True}, extra=1))
    for raw in raws:
        record = validate_event(raw, now_ms=now, org_id=None)
        assert isinstance(record, dict), record
        assert codec.encode(record) == reference_encode(codec, record)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(record: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        target = record
        for key in parents:
            target = target[key]
        target[leaf] = value

    return mutate


def _delete(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda record: record.pop(key)


MUTATIONS = {
    "long given a bool": _set("event_time", True),
    "long out of range": _set("event_time", 2**63),
    "negative long": _set("event_time", -5),
    "long given a float": _set("event_time", 1.0),
    "nullable long given a bool": _set("viewer_time", False),
    "double given an int": _set("playback_time", 3),
    "double given a bool": _set("playback_time", True),
    "string given bytes": _set("env", b"prod"),
    "string with a lone surrogate": _set("env", "\ud800"),
    "required string given None": _set("org_id", None),
    "unknown key": _set("unknown", 1),
    "required key missing": _delete("org_id"),
    "defaulted key missing": _delete("env"),
    "record given a list": _set("device", ["x"]),
    "record given an OrderedDict": _set("os", OrderedDict(family="Linux", version=None)),
    "nested unknown key": _set("device.colour", "red"),
    "nested int out of 32 bits": _set("data.resolution.width", 2**31),
    "nested int given a float": _set("data.resolution.width", 2.0),
    "timestamp given a string": _set("received_time", "now"),
}


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_wrong_values_fail_or_pass_exactly_as_with_fastavro(mutation: str) -> None:
    codec = player_event_codec()
    now = int(time.time() * 1000)
    raw = event(
        "playing",
        now,
        device={"name": "TV"},
        os={"family": "Tizen"},
        data={"bitrate": 3e6, "resolution": {"width": 1280, "height": 720}},
    )
    record = validate_event(raw, now_ms=now, org_id=None)
    assert isinstance(record, dict)
    MUTATIONS[mutation](record)
    assert same_as_fastavro(codec, record)


UNION_SCHEMAS = [
    ["null", "long", "double"],
    ["null", "double", "long"],  # fastavro writes an int as the double: must fall back
    ["double", "null", "string"],
    ["string", "null", "boolean", "int"],
    ["null", {"type": "array", "items": "string"}],
]
UNION_VALUES = [None, 0, 7, -3, 2**40, 1.5, -0.0, True, False, "s", "", ["a"], [], [1], {"x": 1}]


@pytest.mark.parametrize("union", UNION_SCHEMAS, ids=str)
def test_unions_pick_the_branch_fastavro_picks(union: list[Any]) -> None:
    fields = [{"name": "u", "type": union}, {"name": "n", "type": "long"}]
    codec = SingleObjectCodec(
        fastavro.parse_schema({"type": "record", "name": "U", "namespace": "t", "fields": fields})
    )
    compiled = union != ["null", "double", "long"]
    assert (codec._writer is not None) == compiled
    for value in UNION_VALUES:
        record = {"u": value, "n": 1}
        assert same_as_fastavro(codec, record), record
