"""Avro schemas of OpenQoE's Kafka topics and the one codec every component uses.

The wire format is the Avro specification's *single-object encoding*: two marker
bytes ``C3 01``, the schema's 8-byte CRC-64-AVRO fingerprint (little-endian), then
the Avro binary body. Any Avro library that knows the schema can decode it; no
schema registry is needed.
"""

from schemas.codec import (
    AvroCodecError,
    SectionReader,
    SingleObjectCodec,
    UnknownSchemaError,
    load_schema,
    player_event_codec,
    player_event_known_view_reader,
    player_event_reader,
    player_event_sections,
    rejected_event_codec,
    view_summary_codec,
)

__all__ = [
    "AvroCodecError",
    "SectionReader",
    "SingleObjectCodec",
    "UnknownSchemaError",
    "load_schema",
    "player_event_codec",
    "player_event_known_view_reader",
    "player_event_reader",
    "player_event_sections",
    "rejected_event_codec",
    "view_summary_codec",
]
