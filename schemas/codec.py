"""Avro single-object encoding (Avro specification, "Single-object encoding").

``SingleObjectCodec`` writes with one schema and reads any schema it was told about,
resolving older writer schemas to the current reader schema by Avro's own schema
resolution rules. That is what lets producers and consumers upgrade independently
(see ``schemas/README.md``).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
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

    __slots__ = ("_header", "_reader_schema", "_readers", "schema")

    def __init__(
        self,
        schema: dict[str, Any],
        older: Iterable[dict[str, Any]] = (),
        *,
        logical_types: bool = True,
    ) -> None:
        self.schema = schema
        self._header = MAGIC + schema_fingerprint(schema)

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


@cache
def player_event_codec() -> SingleObjectCodec:
    """Codec for ``qoe.events.raw`` values."""
    return SingleObjectCodec(load_schema("player_event"))


@cache
def player_event_reader() -> SingleObjectCodec:
    """Codec for ``qoe.events.raw`` values that decodes timestamps as int milliseconds."""
    return SingleObjectCodec(load_schema("player_event"), logical_types=False)


@cache
def rejected_event_codec() -> SingleObjectCodec:
    """Codec for ``qoe.events.rejected`` values."""
    return SingleObjectCodec(load_schema("rejected_event"))
