"""Avro single-object encoding (Avro specification, "Single-object encoding").

``SingleObjectCodec`` writes with one schema and reads any schema it was told about,
resolving older writer schemas to the current reader schema by Avro's own schema
resolution rules. That is what lets producers and consumers upgrade independently
(see ``schemas/README.md``).
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable, Iterable
from functools import cache
from importlib import resources
from typing import Any, cast

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

MAGIC = b"\xc3\x01"
HEADER_LEN = len(MAGIC) + 8


class AvroCodecError(ValueError):
    """A value could not be encoded or decoded."""


class UnknownSchemaError(AvroCodecError):
    """The value was written with a schema this codec was not given."""


# --- compiled writer -----------------------------------------------------------------------
# fastavro chooses the branch of every union by validating the value against each branch,
# recursively for records: with ~90 nullable fields, encoding a PlayerEvent cost ~80 us, the
# largest single cost of the collector. The writer below is compiled once per schema (Python
# source generated per record type, closures for arrays and other unions) and picks union
# branches by exact Python type. It handles only values
# whose Avro encoding is unambiguous (None, bool, int in range, float, str, dict for a
# record, list for an array, all of exactly these types) and raises ``_Unsupported`` for
# anything else, in which case ``encode`` hands the record to fastavro, which then writes
# the same bytes or raises the same error as before. Values it does write are written
# exactly as fastavro writes them (tests/unit/test_codec_fast_path.py compares both).

_Writer = Callable[[bytearray, Any], None]
_LONG_MIN, _LONG_MAX = -(1 << 63), (1 << 63) - 1
_INT_MIN, _INT_MAX = -(1 << 31), (1 << 31) - 1
_pack_double = struct.Struct("<d").pack


class _Unsupported(Exception):  # control flow only, never escapes encode()
    """The compiled writer does not handle this value; fastavro will."""


class _NotCompilable(Exception):  # control flow only, never escapes the compiler
    """The schema uses something the compiled writer does not implement."""


def _varint(out: bytearray, n: int) -> None:
    """Append a non-negative (already zig-zagged) integer as an Avro varint."""
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _write_long(out: bytearray, value: Any) -> None:
    if type(value) is not int or not _LONG_MIN <= value <= _LONG_MAX:
        raise _Unsupported
    _varint(out, (value << 1) ^ (value >> 63))


def _write_int(out: bytearray, value: Any) -> None:
    if type(value) is not int or not _INT_MIN <= value <= _INT_MAX:
        raise _Unsupported
    _varint(out, (value << 1) ^ (value >> 63))


def _write_double(out: bytearray, value: Any) -> None:
    if type(value) is not float:
        raise _Unsupported
    out += _pack_double(value)


def _write_boolean(out: bytearray, value: Any) -> None:
    if type(value) is not bool:
        raise _Unsupported
    out.append(1 if value else 0)


def _write_string(out: bytearray, value: Any) -> None:
    if type(value) is not str:
        raise _Unsupported
    try:
        data = value.encode()
    except UnicodeEncodeError:  # lone surrogates: let fastavro report it
        raise _Unsupported from None
    n = len(data) << 1
    if n < 0x80:
        out.append(n)
    else:
        _varint(out, n)
    out += data


def _write_null(out: bytearray, value: Any) -> None:
    if value is not None:
        raise _Unsupported


# Avro primitive -> (writer, the one Python type it accepts)
_PRIMITIVES: dict[str, tuple[_Writer, type]] = {
    "null": (_write_null, type(None)),
    "boolean": (_write_boolean, bool),
    "int": (_write_int, int),
    "long": (_write_long, int),
    "double": (_write_double, float),
    "string": (_write_string, str),
}
# Logical types whose values are written as the underlying type when given as such.
_PASS_THROUGH_LOGICAL = {("long", "timestamp-millis")}


def _compile(schema: Any, named: dict[str, _Writer]) -> tuple[_Writer, type]:
    """The writer of a (parsed) schema and the Python type of the values it writes."""
    if isinstance(schema, str):
        if schema in _PRIMITIVES:
            return _PRIMITIVES[schema]
        if schema in named:
            return named[schema], dict
        raise _NotCompilable(schema)
    if isinstance(schema, list):
        return _compile_union(schema, named), object
    if not isinstance(schema, dict):
        raise _NotCompilable(repr(schema))
    kind = str(schema.get("type"))
    logical = schema.get("logicalType")
    if logical is not None:
        if (kind, logical) not in _PASS_THROUGH_LOGICAL:
            raise _NotCompilable(f"{kind}/{logical}")
        return _PRIMITIVES[kind]
    if kind == "record":
        return _compile_record(schema, named), dict
    if kind == "array":
        return _compile_array(schema, named), list
    if kind in _PRIMITIVES:
        return _PRIMITIVES[kind]
    raise _NotCompilable(kind)


def _zigzag(low: str, high: str) -> list[str]:
    """Statements writing the int in ``v`` as a zigzag varint, if it is within low..high."""
    return [
        f"if type(v) is not int or not {low} <= v <= {high}:",
        "    raise _Unsupported",
        "n = (v << 1) ^ (v >> 63)",
        "if n < 0x80:",
        "    append(n)",
        "else:",
        "    _varint(out, n)",
    ]


# Statements that write the value in ``v`` (one Avro primitive), for generated record writers.
_INLINE: dict[str, list[str]] = {
    "string": [
        "if type(v) is not str:",
        "    raise _Unsupported",
        "try:",
        "    b = v.encode()",
        "except UnicodeEncodeError:",
        "    raise _Unsupported from None",  # lone surrogates: let fastavro report it
        "n = len(b) << 1",
        "if n < 0x80:",
        "    append(n)",
        "else:",
        "    _varint(out, n)",
        "out += b",
    ],
    "long": _zigzag("_LONG_MIN", "_LONG_MAX"),
    "int": _zigzag("_INT_MIN", "_INT_MAX"),
    "double": [
        "if type(v) is not float:",
        "    raise _Unsupported",
        "out += _pack_double(v)",
    ],
    "boolean": [
        "if v is True:",
        "    append(1)",
        "elif v is False:",
        "    append(0)",
        "else:",
        "    raise _Unsupported",
    ],
    "null": [
        "if v is not None:",
        "    raise _Unsupported",
    ],
}


def _primitive_name(schema: Any) -> str | None:
    """The primitive a (parsed) schema writes inline, or None."""
    if isinstance(schema, str):
        return schema if schema in _INLINE else None
    if isinstance(schema, dict):
        kind, logical = schema.get("type"), schema.get("logicalType")
        if logical is None:
            return kind if isinstance(kind, str) and kind in _INLINE else None
        if (kind, logical) in _PASS_THROUGH_LOGICAL:
            return str(kind)
    return None


def _compile_record(schema: dict[str, Any], named: dict[str, _Writer]) -> _Writer:
    """Generate, compile and return straight-line Python that writes one record.

    One function per record type, with the fields in schema order and primitives written
    inline (no call per field): about twice as fast as a loop over per-field closures.
    Nested records, arrays and general unions call their own compiled writers.
    """
    namespace: dict[str, Any] = {
        "_Unsupported": _Unsupported,
        "_varint": _varint,
        "_pack_double": _pack_double,
        "_LONG_MIN": _LONG_MIN,
        "_LONG_MAX": _LONG_MAX,
        "_INT_MIN": _INT_MIN,
        "_INT_MAX": _INT_MAX,
    }

    def constant(value: Any) -> str:
        name = f"_c{len(namespace)}"
        namespace[name] = value
        return name

    def write_value(kind: Any, indent: str, in_union: bool = False) -> list[str]:
        primitive = _primitive_name(kind)
        if primitive is not None:
            return [indent + line for line in _INLINE[primitive]]
        writer, python_type = _compile(kind, named)
        if in_union and python_type is object:
            raise _NotCompilable("union inside a union")
        return [f"{indent}{constant(writer)}(out, v)"]

    names = frozenset(field["name"] for field in schema["fields"])
    required = frozenset(field["name"] for field in schema["fields"] if "default" not in field)
    body = [
        "def write_record(out, value):",
        # strict_allow_default: no unknown keys; a missing key only where there is a default.
        f"    if type(value) is not dict or not value.keys() <= {constant(names)}:",
        "        raise _Unsupported",
        f"    if not {constant(required)} <= value.keys():",
        "        raise _Unsupported",
        "    get = value.get",
        "    append = out.append",
    ]
    for field in schema["fields"]:
        name, kind = field["name"], field["type"]
        if name in required:
            body.append(f"    v = value[{name!r}]")
        elif field["default"] is None:
            body.append(f"    v = get({name!r})")
        else:
            body.append(f"    v = get({name!r}, {constant(field['default'])})")
        if isinstance(kind, list) and len(kind) == 2 and kind[0] == "null":
            # ["null", T]: branch 0 for None (no call), else branch 1 and the T.
            body += ["    if v is None:", "        append(0)", "    else:", "        append(2)"]
            body += write_value(kind[1], "        ", in_union=True)
        else:
            body += write_value(kind, "    ")
    source = "\n".join(body) + "\n"
    code = compile(source, f"<avro writer for {schema['name']}>", "exec")
    exec(code, namespace)  # noqa: S102 - source generated above from the schema, names via repr
    write_record: _Writer = namespace["write_record"]
    named[schema["name"]] = write_record
    return write_record


def _compile_array(schema: dict[str, Any], named: dict[str, _Writer]) -> _Writer:
    item_writer = _compile(schema["items"], named)[0]

    def write_array(out: bytearray, value: Any) -> None:
        if type(value) is not list:
            raise _Unsupported
        if value:
            _varint(out, len(value) << 1)
            for item in value:
                item_writer(out, item)
        out.append(0)

    return write_array


def _compile_union(branches: list[Any], named: dict[str, _Writer]) -> _Writer:
    if len(branches) > 63:
        raise _NotCompilable("union too large")  # the branch index must fit in one byte
    by_type: dict[type, tuple[int, _Writer]] = {}
    for index, branch in enumerate(branches):
        writer, python_type = _compile(branch, named)
        if python_type in by_type or python_type is object:
            # Two branches for one Python type (int and long, two records, ...): fastavro's
            # choice between them depends on the value, so leave such unions to it.
            raise _NotCompilable("ambiguous union")
        by_type[python_type] = (index << 1, writer)  # the zig-zagged branch index
    if int in by_type and float in by_type and by_type[float][0] < by_type[int][0]:
        # fastavro takes the first branch that accepts the value, and a double accepts ints.
        raise _NotCompilable("double before int/long")
    if len(branches) == 2 and branches[0] == "null":
        inner = by_type[next(t for t in by_type if t is not type(None))][1]

        def write_nullable(out: bytearray, value: Any) -> None:
            if value is None:
                out.append(0)
            else:
                out.append(2)
                inner(out, value)

        return write_nullable

    def write_union(out: bytearray, value: Any) -> None:
        entry = by_type.get(type(value))
        if entry is None:
            raise _Unsupported
        out.append(entry[0])
        entry[1](out, value)

    return write_union


def _compile_writer(schema: dict[str, Any]) -> _Writer | None:
    """A fast writer for a parsed record schema, or None if it uses unsupported features."""
    try:
        return _compile(schema, {})[0]
    except _NotCompilable:
        return None


def load_schema(name: str) -> dict[str, Any]:
    """Return the parsed ``schemas/<name>.avsc`` (``name`` without extension)."""
    text = resources.files(__package__).joinpath(f"{name}.avsc").read_text("utf-8")
    return cast(dict[str, Any], fastavro.parse_schema(json.loads(text)))


def schema_fingerprint(schema: dict[str, Any]) -> bytes:
    """The 8-byte CRC-64-AVRO fingerprint of a parsed schema, in wire (little-endian) order."""
    # fastavro returns the little-endian byte string in hex, which is the wire order.
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))


def _without_logical_types(schema: Any) -> Any:
    """A copy of a schema with every ``logicalType`` removed (same canonical form)."""
    if isinstance(schema, dict):
        return {
            k: _without_logical_types(v)
            for k, v in schema.items()
            if k != "logicalType" and not k.startswith("__")
        }
    if isinstance(schema, list):
        return [_without_logical_types(item) for item in schema]
    return schema


class SingleObjectCodec:
    """Encode with ``schema``; decode values written with ``schema`` or any of ``older``.

    With ``logical_types=False`` timestamps decode as plain ``int`` milliseconds instead
    of ``datetime``: the stream processors want numbers, and building a datetime per
    field per event is measurable overhead. The fingerprint is unaffected, because the
    parsing canonical form has no logical types.
    """

    __slots__ = ("_header", "_reader_schema", "_readers", "_writer", "schema")

    def __init__(
        self,
        schema: dict[str, Any],
        older: Iterable[dict[str, Any]] = (),
        *,
        logical_types: bool = True,
    ) -> None:
        self.schema = schema
        self._header = MAGIC + schema_fingerprint(schema)
        self._writer = _compile_writer(schema)

        def for_reading(s: dict[str, Any]) -> dict[str, Any]:
            if logical_types:
                return s
            return cast(dict[str, Any], fastavro.parse_schema(_without_logical_types(s)))

        self._reader_schema = for_reading(schema)
        self._readers: dict[bytes, dict[str, Any]] = {self._header[2:]: self._reader_schema}
        for writer in older:
            self._readers[schema_fingerprint(writer)] = for_reading(writer)

    @property
    def header(self) -> bytes:
        """The 10 bytes every value encoded by this codec starts with."""
        return self._header

    def encode(self, record: dict[str, Any]) -> bytes:
        """Encode one record. Raises ``AvroCodecError`` if it does not fit the schema."""
        if self._writer is not None:
            out = bytearray(self._header)
            try:
                self._writer(out, record)
            except _Unsupported:
                pass  # fastavro writes it, or raises the error it always raised
            else:
                return bytes(out)
        buf = io.BytesIO()
        buf.write(self._header)
        try:
            fastavro.schemaless_writer(buf, self.schema, record, strict_allow_default=True)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise AvroCodecError(f"record does not match {self.schema['name']}") from exc
        return buf.getvalue()

    def decode(self, value: bytes) -> dict[str, Any]:
        """Decode one value, resolving an older writer schema to the current one."""
        if len(value) < HEADER_LEN or value[:2] != MAGIC:
            raise AvroCodecError("not an Avro single-object encoded value (bad marker)")
        writer = self._readers.get(bytes(value[2:HEADER_LEN]))
        if writer is None:
            raise UnknownSchemaError(
                f"unknown schema fingerprint {bytes(value[2:HEADER_LEN]).hex()} "
                f"for {self.schema['name']}"
            )
        try:
            record = cast(
                dict[str, Any],
                fastavro.schemaless_reader(
                    io.BytesIO(value[HEADER_LEN:]), writer, self._reader_schema
                ),
            )
        except (ValueError, TypeError, EOFError, IndexError) as exc:
            raise AvroCodecError(f"corrupt {self.schema['name']} value") from exc
        return record


def _player_event_older() -> list[dict[str, Any]]:
    # Values written before v2 (sequence, data.reason, data.player_state) still decode.
    return [load_schema("player_event.v1")]


@cache
def player_event_codec() -> SingleObjectCodec:
    """Codec for ``qoe.events.raw`` values."""
    return SingleObjectCodec(load_schema("player_event"), older=_player_event_older())


@cache
def player_event_reader() -> SingleObjectCodec:
    """Codec for ``qoe.events.raw`` values that decodes timestamps as int milliseconds."""
    return SingleObjectCodec(
        load_schema("player_event"), older=_player_event_older(), logical_types=False
    )


@cache
def rejected_event_codec() -> SingleObjectCodec:
    """Codec for ``qoe.events.rejected`` values."""
    return SingleObjectCodec(load_schema("rejected_event"))


@cache
def view_summary_codec() -> SingleObjectCodec:
    """Codec for ``qoe.views`` values."""
    return SingleObjectCodec(load_schema("view_summary"))
