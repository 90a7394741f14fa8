"""Avro single-object encoding (Avro specification, "Single-object encoding").

``SingleObjectCodec`` writes with one schema and reads any schema it was told about,
resolving older writer schemas to the current reader schema by Avro's own schema
resolution rules. That is what lets producers and consumers upgrade independently
(see ``schemas/README.md``).
"""

from __future__ import annotations

import copy
import io
import json
import re
import struct
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from importlib import resources
from typing import Any, cast

import fastavro
import fastavro.read
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


# --- compiled reader -----------------------------------------------------------------------
# fastavro.schemaless_reader re-parses the schema and walks it per value (45-95 us per
# PlayerEvent, most of the stream processor's CPU). The reader below is compiled once per
# (writer, reader) schema pair: one generated Python function per record, fields decoded
# inline from the bytes with an integer position, unions by branch index, schema resolution
# (fields matched by name, skipped, filled from defaults, promoted) decided at compile time
# by fastavro's own rules. It returns what fastavro returns, value for value and key for key
# (tests/unit/test_codec_reader.py compares both), and raises ``_Corrupt`` (a ValueError,
# reported as AvroCodecError) for bytes that are not a value of the writer schema. A schema
# it cannot compile is left to fastavro.

_Reader = Callable[[bytes, int], tuple[Any, int]]
_PRIMITIVE_TYPES = frozenset(
    {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
)
_NAMED_TYPES = frozenset({"record", "enum", "fixed"})
# Writer type -> reader types it is promoted to (Avro schema resolution, as fastavro does it).
_PROMOTIONS = frozenset(
    {
        ("int", "long"),
        ("int", "float"),
        ("int", "double"),
        ("long", "float"),
        ("long", "double"),
        ("float", "double"),
        ("string", "bytes"),
        ("bytes", "string"),
    }
)
_MIN_SIZE = {"null": 0, "boolean": 1, "int": 1, "long": 1, "float": 4, "double": 8}


class _Corrupt(ValueError):
    """The bytes are not a value of the writer schema (truncated, overlong, out of range)."""


class _Unresolvable(ValueError):
    """The value holds a branch or symbol the reader schema has no counterpart for."""


# What decoding bytes that are not a value of the schema can raise in a compiled reader:
# _Corrupt, IndexError (past the end), struct.error (a float past the end), UnicodeDecodeError,
# what a logical type's conversion raises (ValueError, OverflowError, decimal's errors), and
# RecursionError (a recursive schema nested too deep).
_READ_ERRORS = (ValueError, IndexError, struct.error, ArithmeticError, RecursionError)


class _Mismatch:  # an enum symbol of the writer that the reader cannot read
    pass


def _read_long(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode the zig-zag varint at ``pos``: (value, position after it).

    Unrolled for up to 6 bytes (a timestamp in milliseconds takes 6), a loop after that.
    """
    b = buf[pos]
    n = b & 0x7F
    if b < 0x80:
        return (n >> 1) ^ -(n & 1), pos + 1
    b = buf[pos + 1]
    n |= (b & 0x7F) << 7
    if b < 0x80:
        return (n >> 1) ^ -(n & 1), pos + 2
    b = buf[pos + 2]
    n |= (b & 0x7F) << 14
    if b < 0x80:
        return (n >> 1) ^ -(n & 1), pos + 3
    b = buf[pos + 3]
    n |= (b & 0x7F) << 21
    if b < 0x80:
        return (n >> 1) ^ -(n & 1), pos + 4
    b = buf[pos + 4]
    n |= (b & 0x7F) << 28
    if b < 0x80:
        return (n >> 1) ^ -(n & 1), pos + 5
    b = buf[pos + 5]
    n |= (b & 0x7F) << 35
    if b < 0x80:
        return (n >> 1) ^ -(n & 1), pos + 6
    pos += 6
    shift = 42
    while True:
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if b < 0x80:
            break
        if shift == 63:
            raise _Corrupt("varint longer than 10 bytes")
        shift += 7
    if n >> 64:
        raise _Corrupt("varint beyond 64 bits")
    return (n >> 1) ^ -(n & 1), pos


def _read_length(buf: bytes, pos: int) -> tuple[int, int]:
    n, pos = _read_long(buf, pos)
    if n < 0:
        raise _Corrupt("negative length")
    return n, pos


def _indent(lines: list[str]) -> list[str]:
    return ["    " + line for line in lines] if lines else ["    pass"]


def _long_into(target: str) -> list[str]:
    """Statements decoding the long at ``pos`` into ``target`` (one byte inline)."""
    return [
        "b = buf[pos]",
        "if b < 0x80:",
        "    pos += 1",
        f"    {target} = (b >> 1) ^ -(b & 1)",
        "else:",
        f"    {target}, pos = _read_long(buf, pos)",
    ]


def _span() -> list[str]:
    """Statements reading a length: the bytes ``pos:end`` follow.

    ``end`` is not checked against the size: a slice past the end is merely short, ``pos``
    then stays past the end, where the next read of a byte or a number raises IndexError
    or struct.error, and each generated function checks ``pos`` before it returns.
    """
    return [
        "b = buf[pos]",
        "if not b & 0x81:",  # one byte, non-negative
        "    end = pos + 1 + (b >> 1)",
        "    pos += 1",
        "else:",
        "    n, pos = _read_length(buf, pos)",
        "    end = pos + n",
    ]


def _named_types(schema: Any, named: dict[str, Any]) -> dict[str, Any]:
    """Every named type defined in a parsed schema, by full name."""
    if isinstance(schema, list):
        for branch in schema:
            _named_types(branch, named)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in _NAMED_TYPES:
            named[schema["name"]] = schema
        if kind == "record":
            for field in schema["fields"]:
                _named_types(field["type"], named)
        elif kind == "array":
            _named_types(schema["items"], named)
        elif kind == "map":
            _named_types(schema["values"], named)
    return named


class _ReaderCompiler:
    """Generates the reader of one writer schema, resolved to one reader schema (or None).

    Resolution mirrors fastavro's ``match_types``/``match_schemas``/``read_data`` so that
    the generated code returns exactly what ``schemaless_reader(writer, reader)`` returns.
    """

    def __init__(self, writer: dict[str, Any], reader: dict[str, Any] | None) -> None:
        self.writer_named = _named_types(writer, {})
        self.reader_named = _named_types(reader, {}) if reader is not None else {}
        self.namespace: dict[str, Any] = {
            "_read_long": _read_long,
            "_read_length": _read_length,
            "_Corrupt": _Corrupt,
            "_Unresolvable": _Unresolvable,
            "_unpack_float": struct.Struct("<f").unpack_from,
            "_unpack_double": struct.Struct("<d").unpack_from,
            "_BOOLEANS": (False, True),
        }
        self.functions: dict[tuple[int, int, bool], str] = {}
        self.inlining: set[tuple[int, int, bool]] = set()  # records being generated
        self.keep: list[Any] = []  # the schemas keyed by id() above stay alive
        self.sources: list[str] = []
        self.counter = 0

    # -- helpers ---------------------------------------------------------------------------

    def constant(self, value: Any) -> str:
        name = f"_k{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def deref(self, schema: Any, named: dict[str, Any]) -> Any:
        """A named reference replaced by its definition; ``{"type": "long"}`` by ``"long"``."""
        if isinstance(schema, str):
            if schema in _PRIMITIVE_TYPES:
                return schema
            if schema not in named:
                raise _NotCompilable(f"unknown type {schema}")
            return named[schema]
        if isinstance(schema, dict):
            kind = schema.get("type")
            if not isinstance(kind, str):
                raise _NotCompilable(repr(kind))
            if kind in _PRIMITIVE_TYPES and not schema.get("logicalType"):
                return kind
            if kind not in _PRIMITIVE_TYPES and kind not in _NAMED_TYPES | {"array", "map"}:
                raise _NotCompilable(kind)  # "error", "request", a named type by reference
            return schema
        if isinstance(schema, list):
            return schema
        raise _NotCompilable(repr(schema))

    @staticmethod
    def kind(schema: Any) -> str:
        return str(schema["type"]) if isinstance(schema, dict) else str(schema)

    def match_types(self, writer: Any, reader: Any) -> bool:
        if isinstance(writer, list) or isinstance(reader, list):
            return True
        if isinstance(writer, str) and isinstance(reader, str) and writer == reader:
            return True
        writer = self.deref(writer, self.writer_named)
        reader = self.deref(reader, self.reader_named)
        if isinstance(writer, dict) or isinstance(reader, dict):
            return self.match_schemas(writer, reader) is not None
        return writer == reader or (writer, reader) in _PROMOTIONS

    def match_schemas(self, writer: Any, reader: Any) -> Any:
        """The reader schema a (non-union) writer schema resolves to, or None."""
        if isinstance(reader, list):
            return next((branch for branch in reader if self.match_types(writer, branch)), None)
        w = self.deref(writer, self.writer_named)
        r = self.deref(reader, self.reader_named)
        w_kind, r_kind = self.kind(w), self.kind(r)
        if w_kind == r_kind == "map":
            return reader if self.match_types(w["values"], r["values"]) else None
        if w_kind == r_kind == "array":
            return reader if self.match_types(w["items"], r["items"]) else None
        if w_kind in _NAMED_TYPES and r_kind in _NAMED_TYPES:
            if w_kind != r_kind:
                raise _NotCompilable("named types of different kinds")
            if w_kind == "fixed" and w["size"] != r["size"]:
                return None
            w_name = w["name"].split(".")[-1]
            aliases = r.get("aliases", [])
            if w_name == r["name"].split(".")[-1] or w["name"] in aliases or w_name in aliases:
                return reader
            return None
        if w_kind in _NAMED_TYPES or r_kind in _NAMED_TYPES:
            return None
        if w_kind == r_kind or (w_kind, r_kind) in _PROMOTIONS:
            return reader
        return None

    def min_size(self, schema: Any, seen: frozenset[int] = frozenset()) -> int:
        """A lower bound of the bytes any value of a writer schema takes."""
        schema = self.deref(schema, self.writer_named)
        if isinstance(schema, list):
            return 1
        kind = self.kind(schema)
        if kind == "record":
            if id(schema) in seen:
                return 0
            inner = seen | {id(schema)}
            return sum(self.min_size(f["type"], inner) for f in schema["fields"])
        if kind == "fixed":
            return int(schema["size"])
        return _MIN_SIZE.get(kind, 1)

    # -- code generation -------------------------------------------------------------------

    def read(self, writer: Any, reader: Any, target: str, skip: bool) -> list[str]:
        """Statements decoding one value of ``writer`` at ``pos`` into ``target``.

        ``reader`` None reads without resolution; ``skip`` only moves ``pos`` past the value
        (a writer field the reader does not have: no logical types, strings not decoded).
        """
        if skip:
            reader = None
        if isinstance(writer, list):
            return self.read_union(writer, reader, target, skip)
        if reader is not None:
            matched = self.match_schemas(writer, reader)
            if matched is None:
                return [f"raise _Unresolvable({f'{writer!r} cannot be read as {reader!r}'!r})"]
            if (
                isinstance(writer, str)
                and writer not in _PRIMITIVE_TYPES
                and isinstance(reader, list)
                and isinstance(matched, dict)
            ):
                raise _NotCompilable("named reference read as a union branch definition")
            reader = self.deref(matched, self.reader_named)
        else:
            matched = None
        w = self.deref(writer, self.writer_named)
        kind = self.kind(w)
        lines = self.read_plain(w, kind, reader, target, skip)
        if skip:
            return lines
        logical = w.get("logicalType") if isinstance(w, dict) else None
        if logical:
            convert = fastavro.read.LOGICAL_READERS.get(f"{kind}-{logical}")
            if convert is not None:
                self.keep.append(w)
                args = f"{target}, {self.constant(w)}, {self.constant(matched)}"
                return [*lines, f"{target} = {self.constant(convert)}({args})"]
        if reader is not None:
            r_kind = self.kind(reader)
            if kind in ("int", "long") and r_kind in ("float", "double"):
                lines.append(f"{target} = float({target})")
            elif kind == "string" and r_kind == "bytes":
                lines.append(f"{target} = {target}.encode()")
            elif kind == "bytes" and r_kind == "string":
                lines.append(f"{target} = {target}.decode()")
        return lines

    def read_plain(self, w: Any, kind: str, reader: Any, target: str, skip: bool) -> list[str]:
        if kind == "null":
            return [] if skip else [f"{target} = None"]
        if kind == "boolean":
            return [f"{target} = _BOOLEANS[buf[pos]]", "pos += 1"]
        if kind in ("int", "long"):
            return _long_into(target)
        if kind == "float":
            # Skipped: not unpacked (a value cut short still fails the end-of-value check).
            return ["pos += 4"] if skip else [f"{target} = _unpack_float(buf, pos)[0]", "pos += 4"]
        if kind == "double":
            return ["pos += 8"] if skip else [f"{target} = _unpack_double(buf, pos)[0]", "pos += 8"]
        if kind == "string":
            get = [] if skip else [f"{target} = buf[pos:end].decode()"]
            return [*_span(), *get, "pos = end"]
        if kind == "bytes":
            get = [] if skip else [f"{target} = buf[pos:end]"]
            return [*_span(), *get, "pos = end"]
        if kind == "fixed":
            length = int(w["size"])
            get = [] if skip else [f"{target} = buf[pos:pos + {length}]"]
            return [*get, f"pos += {length}"]
        if kind == "enum":
            return self.read_enum(w, reader, target, skip)
        if kind in ("array", "map"):
            return self.read_blocks(w, kind, reader, target, skip)
        if kind == "record":
            key = (id(w), id(reader), skip)
            if key not in self.inlining:
                self.inlining.add(key)
                try:
                    return self.record_lines(w, reader, target, skip)
                finally:
                    self.inlining.discard(key)
            name = self.record_function(w, reader, skip)  # a recursive record: a call
            return [f"pos = {name}(buf, pos)"] if skip else [f"{target}, pos = {name}(buf, pos)"]
        raise _NotCompilable(kind)

    def read_enum(self, w: Any, reader: Any, target: str, skip: bool) -> list[str]:
        symbols = list(w["symbols"])
        index = self.fresh("i")
        lines = [
            *_long_into(index),
            f"if not 0 <= {index} < {len(symbols)}:",
            "    raise _Corrupt('enum index out of range')",
        ]
        if skip:
            return lines
        values: list[Any] = symbols
        if reader is not None:
            known, default = reader["symbols"], reader.get("default")
            values = [s if s in known else (default or _Mismatch) for s in symbols]
        lines.append(f"{target} = {self.constant(tuple(values))}[{index}]")
        if _Mismatch in values:
            lines += [
                f"if {target} is {self.constant(_Mismatch)}:",
                f"    raise _Unresolvable({'enum symbol unknown to ' + reader['name']!r})",
            ]
        return lines

    def read_blocks(self, w: Any, kind: str, reader: Any, target: str, skip: bool) -> list[str]:
        """An array or map: blocks of items until a zero count, negative counts with sizes."""
        inner = w["items"] if kind == "array" else w["values"]
        reader_inner = None if reader is None else reader["items" if kind == "array" else "values"]
        item_size = self.min_size(inner) + (1 if kind == "map" else 0)
        if item_size == 0:
            # A count of zero-byte items cannot be checked against the bytes left.
            raise _NotCompilable("array of zero-byte items")
        acc, count, item = self.fresh("acc"), self.fresh("count"), self.fresh("item")
        body = self.read(inner, reader_inner, "_" if skip else item, skip)
        if kind == "map":
            key = self.fresh("key")
            get_key = [] if skip else [f"{key} = buf[pos:end].decode()"]
            body = [*_span(), *get_key, "pos = end", *body]
            store = f"{acc}[{key}] = {item}"
        else:
            store = f"{acc}.append({item})"
        lines = [] if skip else [f"{acc} = {'[]' if kind == 'array' else '{}'}"]
        lines += [
            "while True:",
            *_indent(_long_into(count)),
            f"    if {count} == 0:",
            "        break",
            f"    if {count} < 0:",
            f"        {count} = -{count}",
            *_indent(_indent(_long_into("_"))),  # the block's size in bytes, unused
            f"    if {count} * {item_size} > size - pos:",
            f"        raise _Corrupt({kind + ' block count past the end of the value'!r})",
            f"    for _ in range({count}):",
            *_indent(_indent([*body, *([] if skip else [store])])),
        ]
        if not skip:
            lines.append(f"{target} = {acc}")
        return lines

    def read_union(self, branches: list[Any], reader: Any, target: str, skip: bool) -> list[str]:
        cases = []
        for branch in branches:
            if isinstance(branch, list):
                raise _NotCompilable("union inside a union")
            if reader is None:
                cases.append(self.read(branch, None, target, skip))
                continue
            options = reader if isinstance(reader, list) else [reader]
            chosen = next((r for r in options if self.match_types(branch, r)), None)
            if chosen is None:
                message = f"{branch!r} is not in the reader's {reader!r}"
                cases.append([f"raise _Unresolvable({message!r})"])
            else:
                cases.append(self.read(branch, chosen, target, skip))
        out_of_range = ["else:", "    raise _Corrupt('union branch index out of range')"]
        if len(cases) > 64:
            index = self.fresh("branch")
            lines = _long_into(index)
            for i, case in enumerate(cases):
                lines += [f"{'if' if i == 0 else 'elif'} {index} == {i}:", *_indent(case)]
            return lines + out_of_range
        # The zig-zagged index fits in one byte: compare the byte. Branch 0 (null, in most
        # unions) is tested first, without a variable: the cheapest path is the commonest.
        head = ["if not buf[pos]:", "    pos += 1", *_indent(cases[0])]
        if len(cases) == 1:
            return [*head, *out_of_range]
        if len(cases) == 2:  # ["null", T]
            return [*head, "elif buf[pos] == 2:", "    pos += 1", *_indent(cases[1]), *out_of_range]
        rest = ["b = buf[pos]", "pos += 1"]
        for i, case in enumerate(cases[1:], 1):
            rest += [f"{'if' if i == 1 else 'elif'} b == {2 * i}:", *_indent(case)]
        return [*head, "else:", *_indent(rest + out_of_range)]

    def record_function(self, w: dict[str, Any], reader: Any, skip: bool) -> str:
        """The name of a generated function reading (or skipping) one record.

        Only the top-level record and recursive ones get a function; other records are
        read inline, in their parent's function (no call, no tuple per record).
        """
        key = (id(w), id(reader), skip)
        if key in self.functions:
            return self.functions[key]
        self.keep.append((w, reader))
        name = f"_{'skip' if skip else 'read'}_{len(self.functions)}"
        self.functions[key] = name
        self.inlining.add(key)
        body = ["size = len(buf)", *self.record_lines(w, reader, "record", skip)]
        body += ["if pos > size:", "    raise _Corrupt('the value ends too early')"]
        body.append("return pos" if skip else "return record, pos")
        # Helpers and constants become default arguments: local, not global, look-ups.
        used = sorted(set(re.findall(r"\b_[A-Za-z]\w*", "\n".join(body))) & self.namespace.keys())
        params = "".join(f", {n}={n}" for n in used)
        self.sources.append("\n".join([f"def {name}(buf, pos{params}):", *_indent(body)]))
        return name

    def record_lines(self, w: dict[str, Any], reader: Any, target: str, skip: bool) -> list[str]:
        """Statements reading one record into ``target`` (fastavro's key order)."""
        # (writer type, reader type or None to skip, target) per writer field, in order
        fields: list[tuple[Any, Any, str | None]] = []
        keys: list[str] = []
        values: list[str] = []
        tail: list[str] = []
        if reader is None:
            for field in w["fields"]:
                var = None if skip else self.fresh("f")
                fields.append((field["type"], None, var))
                if var is not None:
                    keys.append(field["name"])
                    values.append(var)
        else:
            by_name = {f["name"]: f for f in reader["fields"]}
            by_alias = {a: f for f in reader["fields"] for a in f.get("aliases", [])}
            unread = dict(by_name)
            for field in w["fields"]:
                match = by_name.get(field["name"], by_alias.get(field["name"]))
                if match is None:
                    fields.append((field["type"], None, None))
                    continue
                if match["name"] not in unread:
                    raise _NotCompilable("two writer fields for one reader field")
                del unread[match["name"]]
                var = self.fresh("f")
                fields.append((field["type"], match["type"], var))
                keys.append(match["name"])
                values.append(var)
            for field in unread.values():
                if "default" not in field:
                    message = f"no default value for field {field['name']} in {reader['name']}"
                    tail.append(f"raise _Unresolvable({message!r})")
                    continue
                default = field["default"]
                if default is None or isinstance(default, (bool, int, float, str)):
                    values.append(self.constant(default))
                else:  # a fresh copy per value, so that no two records share it
                    values.append(f"_deepcopy({self.constant(default)})")
                    self.namespace["_deepcopy"] = copy.deepcopy
                keys.append(field["name"])
        lines = [*self.read_fields(fields, reader is not None), *tail]
        if not skip:
            pairs = ", ".join(f"{k!r}: {v}" for k, v in zip(keys, values, strict=True))
            lines.append(f"{target} = {{{pairs}}}")
        return lines

    def read_fields(self, fields: list[tuple[Any, Any, str | None]], resolve: bool) -> list[str]:
        """Statements reading the fields of a record in writer order (None: skip it)."""
        lines: list[str] = []
        for writer, reader, target in fields:
            if target is None:
                lines += self.read(writer, None, "_", True)
            else:
                lines += self.read(writer, reader if resolve else None, target, False)
        return lines

    def compile(self, writer: dict[str, Any], reader: dict[str, Any] | None) -> _Reader:
        if self.kind(writer) != "record":
            raise _NotCompilable("not a record")
        if reader is not None:
            matched = self.match_schemas(writer, reader)
            if matched is None:
                raise _NotCompilable("the reader schema does not match")  # fastavro raises
            reader = self.deref(matched, self.reader_named)
            if self.kind(reader) != "record":
                raise _NotCompilable("reader is not a record")
        name = self.record_function(writer, reader, False)
        source = "\n\n".join(self.sources) + "\n"
        code = compile(source, f"<avro reader for {writer['name']}>", "exec")
        exec(code, self.namespace)  # noqa: S102 - generated above from the schemas, names via repr
        return cast(_Reader, self.namespace[name])


def _compile_reader(writer: dict[str, Any], reader: dict[str, Any] | None) -> _Reader | None:
    """A fast reader of values written with ``writer`` as ``schemaless_reader`` reads them
    with ``reader`` (None: no resolution), or None if the schemas use unsupported features."""
    if reader is not None and writer == reader:
        reader = None  # as fastavro does: no resolution between identical schemas
    try:
        return _ReaderCompiler(writer, reader).compile(writer, reader)
    except (_NotCompilable, KeyError, TypeError, RecursionError, SyntaxError):
        return None  # SyntaxError: nested too deep for Python's compiler


def load_schema(name: str) -> dict[str, Any]:
    """Return the parsed ``schemas/<name>.avsc`` (``name`` without extension)."""
    text = resources.files(__package__).joinpath(f"{name}.avsc").read_text("utf-8")
    return cast(dict[str, Any], fastavro.parse_schema(json.loads(text)))


def schema_fingerprint(schema: dict[str, Any]) -> bytes:
    """The 8-byte CRC-64-AVRO fingerprint of a parsed schema, in wire (little-endian) order."""
    # fastavro returns the little-endian byte string in hex, which is the wire order.
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))


def _projected(schema: dict[str, Any], fields: Iterable[str]) -> dict[str, Any]:
    """A reader schema of the same record with only ``fields`` (each must exist and must
    not use a named type that only a left-out field defines)."""
    wanted = list(fields)
    missing = sorted(set(wanted) - {field["name"] for field in schema["fields"]})
    if missing:
        raise ValueError(f"{schema['name']} has no field {', '.join(missing)}")
    kept = [field for field in schema["fields"] if field["name"] in wanted]
    plain = _without_private_keys({**schema, "fields": kept})
    return cast(dict[str, Any], fastavro.parse_schema(plain))


def _without_private_keys(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _without_private_keys(v) for k, v in schema.items() if not k.startswith("__")}
    if isinstance(schema, list):
        return [_without_private_keys(item) for item in schema]
    return schema


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

    With ``fields``, ``decode`` returns only those fields of the top-level record and moves
    past the others without building them (schema resolution to a reader schema with only
    these fields): the processor needs six fields of an event for a view it already has,
    and that decode takes about two thirds of the time of a full one. Encoding is unchanged.
    """

    __slots__ = ("_header", "_reader_schema", "_readers", "_writer", "schema")

    def __init__(
        self,
        schema: dict[str, Any],
        older: Iterable[dict[str, Any]] = (),
        *,
        logical_types: bool = True,
        fields: Iterable[str] | None = None,
    ) -> None:
        self.schema = schema
        self._header = MAGIC + schema_fingerprint(schema)
        self._writer = _compile_writer(schema)

        def for_reading(s: dict[str, Any]) -> dict[str, Any]:
            if logical_types:
                return s
            return cast(dict[str, Any], fastavro.parse_schema(_without_logical_types(s)))

        self._reader_schema = for_reading(schema)
        if fields is not None:
            self._reader_schema = _projected(self._reader_schema, fields)
        # fingerprint -> (writer schema, its compiled reader or None for fastavro)
        self._readers: dict[bytes, tuple[dict[str, Any], _Reader | None]] = {}
        for writer in [schema, *older]:
            parsed = (
                self._reader_schema if writer is schema and fields is None else for_reading(writer)
            )
            compiled = _compile_reader(parsed, self._reader_schema)
            self._readers[schema_fingerprint(writer)] = (parsed, compiled)

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
        if type(value) is not bytes:
            value = bytes(value)  # memoryview, bytearray: the compiled readers index bytes
        if len(value) < HEADER_LEN or value[:2] != MAGIC:
            raise AvroCodecError("not an Avro single-object encoded value (bad marker)")
        entry = self._readers.get(value[2:HEADER_LEN])
        if entry is None:
            raise UnknownSchemaError(
                f"unknown schema fingerprint {value[2:HEADER_LEN].hex()} for {self.schema['name']}"
            )
        writer, compiled = entry
        record: dict[str, Any]
        if compiled is not None:
            try:
                record = compiled(value, HEADER_LEN)[0]
            except _Unresolvable as exc:
                raise AvroCodecError(f"cannot resolve {self.schema['name']}: {exc}") from exc
            except _READ_ERRORS as exc:
                raise AvroCodecError(f"corrupt {self.schema['name']} value: {exc}") from exc
            return record
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


# What the processor reads of an event for a view it already has (processors.batch).
PLAYER_EVENT_KNOWN_VIEW_FIELDS = (
    "event_id",
    "event_type",
    "event_time",
    "received_time",
    "view_id",
    "data",
)
# What processors.view reads of ``data`` (tests/unit/test_batch.py checks it against the
# code): an event that needs more of it (an error, logged whole) is decoded whole.
PLAYER_EVENT_KNOWN_VIEW_DATA_FIELDS = (
    "player_startup_time",
    "page_load_time",
    "video_startup_time",
    "bitrate",
    "resolution",
    "seek_latency",
    "stall_duration",
    "previous_bitrate",
    "new_bitrate",
    "new_resolution",
    "completion_rate",
    "error_family",
    "error_code",
    "fatal",
    "quartile",
    "dropped_frames",
    "player_state",
)


@cache
def player_event_known_view_reader() -> SingleObjectCodec:
    """``player_event_reader`` decoding only ``PLAYER_EVENT_KNOWN_VIEW_FIELDS``."""
    return SingleObjectCodec(
        load_schema("player_event"),
        older=_player_event_older(),
        logical_types=False,
        fields=PLAYER_EVENT_KNOWN_VIEW_FIELDS,
    )


class SectionReader:
    """Reads values of one writer schema in three sections, for callers that can skip the
    middle one by comparing bytes instead of parsing it.

    The record's fields are split at ``key`` (the last field of the *head*) and at the
    first field of ``fields`` after it (the first of the *tail*); the fields in between are
    the *middle*, none of which is in ``fields``. ``head`` reads the head and returns the
    position where the middle starts; ``middle_end`` parses the middle only to find where
    it ends; ``tail`` reads the tail from there. Head and tail hold only ``fields``, as
    ``SingleObjectCodec(fields=...)`` returns them.

    The point: the middle of a player event (session, device, player, video...) is, byte
    for byte, the same in every event of a view. A caller that kept the middle of a view's
    last event and finds the same bytes at the same place knows, without parsing, where the
    tail starts: the parse is determined by the bytes it consumes. Values written with
    any other schema (``head`` returns None) are for ``SingleObjectCodec.decode``.
    """

    __slots__ = ("_head", "_middle", "_prefix", "_tail", "name")

    def __init__(
        self,
        schema: dict[str, Any],
        fields: Iterable[str],
        key: str,
        nested: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        wanted = set(fields)
        plain = cast(dict[str, Any], fastavro.parse_schema(_without_logical_types(schema)))
        names = [field["name"] for field in plain["fields"]]
        if key not in names or key not in wanted:
            raise ValueError(f"{schema['name']}: the key {key!r} must be one of the fields")
        cut = names.index(key) + 1
        resume = next((i for i in range(cut, len(names)) if names[i] in wanted), len(names))
        self.name = schema["name"]
        self._prefix = MAGIC + schema_fingerprint(schema)
        readers = [
            _section_reader(plain, plain["fields"][a:b], wanted, nested or {})
            for a, b in ((0, cut), (cut, resume), (resume, len(names)))
        ]
        if any(reader is None for reader in readers):
            raise ValueError(f"{schema['name']}: a section cannot be compiled")
        self._head, self._middle, self._tail = cast(list[_Reader], readers)

    def head(self, value: bytes) -> tuple[dict[str, Any], int] | None:
        """The head's fields and where the middle starts; None if ``value`` was not written
        with this reader's schema. ``value`` must be ``bytes``."""
        if not value.startswith(self._prefix):
            return None
        return self._read(self._head, value, HEADER_LEN)

    def middle_end(self, value: bytes, pos: int) -> int:
        """Where the middle that starts at ``pos`` ends (the tail starts)."""
        return self._read(self._middle, value, pos)[1]

    def tail(self, value: bytes, pos: int) -> dict[str, Any]:
        """The tail's fields, read from ``pos``."""
        return self._read(self._tail, value, pos)[0]

    def _read(self, reader: _Reader, value: bytes, pos: int) -> tuple[dict[str, Any], int]:
        try:
            return cast(tuple[dict[str, Any], int], reader(value, pos))
        except _READ_ERRORS as exc:
            raise AvroCodecError(f"corrupt {self.name} value: {exc}") from exc


def _section_reader(
    schema: dict[str, Any],
    fields: list[dict[str, Any]],
    wanted: set[str],
    nested: Mapping[str, Iterable[str]],
) -> _Reader | None:
    """A compiled reader of ``fields`` of ``schema`` (a run of its fields, read as a record
    of their own) that keeps only the ``wanted`` ones, and of a (nullable) record field
    named in ``nested`` only the fields given there; named types may be defined anywhere in
    ``schema``."""
    writer = {**schema, "fields": fields}
    kept = [
        field if field["name"] not in nested else _project_field(field, nested[field["name"]])
        for field in fields
        if field["name"] in wanted
    ]
    reader = {**schema, "fields": kept}
    try:
        compiler = _ReaderCompiler(writer, reader)
        compiler.writer_named = _named_types(schema, {})
        compiler.reader_named = {**compiler.writer_named, **_named_types(reader, {})}
        return compiler.compile(writer, reader)
    except (_NotCompilable, KeyError, TypeError, RecursionError, SyntaxError):
        return None


def _project_field(field: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """``field`` (a record, or a union with one record branch) read as that record with
    only the fields ``names``."""
    keep = set(names)

    def project(record: dict[str, Any]) -> dict[str, Any]:
        missing = sorted(keep - {f["name"] for f in record["fields"]})
        if missing:
            raise ValueError(f"{record['name']} has no field {', '.join(missing)}")
        return {**record, "fields": [f for f in record["fields"] if f["name"] in keep]}

    kind = field["type"]
    if isinstance(kind, dict) and kind.get("type") == "record":
        return {**field, "type": project(kind)}
    if isinstance(kind, list):
        records = [b for b in kind if isinstance(b, dict) and b.get("type") == "record"]
        if len(records) == 1:
            return {**field, "type": [project(b) if b is records[0] else b for b in kind]}
    raise ValueError(f"field {field['name']} is not a record or a union with one record")


@cache
def player_event_sections() -> SectionReader:
    """``qoe.events.raw`` values of the current schema, in sections around ``view_id``:
    what ``player_event_known_view_reader`` decodes, with a middle that can be skipped and
    of ``data`` only ``PLAYER_EVENT_KNOWN_VIEW_DATA_FIELDS``."""
    return SectionReader(
        load_schema("player_event"),
        PLAYER_EVENT_KNOWN_VIEW_FIELDS,
        key="view_id",
        nested={"data": PLAYER_EVENT_KNOWN_VIEW_DATA_FIELDS},
    )


@cache
def rejected_event_codec() -> SingleObjectCodec:
    """Codec for ``qoe.events.rejected`` values."""
    return SingleObjectCodec(load_schema("rejected_event"))


@cache
def view_summary_codec() -> SingleObjectCodec:
    """Codec for ``qoe.views`` values."""
    return SingleObjectCodec(load_schema("view_summary"))
