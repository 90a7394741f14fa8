"""Prometheus remote write 1.0: protobuf ``WriteRequest`` + snappy block format.

A small hand encoder (reference/protocols.md §1.1, §1.10): the wire format is four
messages, and no maintained Python package provides it without pulling in a protobuf
runtime. Labels are validated here because receivers are lenient in different ways
(§1.3): sorted by name, unique, non-empty, names matching the Prometheus regexes.
"""

from __future__ import annotations

import functools
import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import snappy
from prometheus_client.utils import floatToGoString

from processors.errors import RejectedError, RetryableError

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
MAX_LABELS = 30
MAX_LABEL_VALUE_CHARS = 2048
_pack_double = struct.Struct("<d").pack
HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
    "User-Agent": "openqoe-processor/0.1.0",
}


@dataclass(frozen=True, slots=True)
class Sample:
    """One sample of one series: full label set (with ``__name__``), value, time in ms."""

    labels: Mapping[str, str]
    value: float
    timestamp_ms: int


class InvalidSeriesError(ValueError):
    """A label set that a strict receiver (Mimir) would reject."""


@functools.lru_cache(maxsize=1024)  # bucket bounds are a closed set (processors.catalog)
def format_le(bound: float) -> str:
    """``le`` label text exactly as Prometheus and client_python format it.

    ``le="1"`` and ``le="1.0"`` are different series, so this must never change.
    """
    return str(floatToGoString(bound))  # type: ignore[no-untyped-call]


_SMALL_VARINTS = tuple(bytes((n,)) for n in range(0x80))


def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64
    if n < 0x80:
        return _SMALL_VARINTS[n]
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint((number << 3) | 2) + _varint(len(payload)) + payload


def _label(name: str, value: str) -> bytes:
    return _field(1, name.encode()) + _field(2, value.encode())


def _sample(value: float, timestamp_ms: int) -> bytes:
    # Sample{double value = 1; int64 timestamp = 2}; zero timestamps would be omitted, but
    # we never send them (they are 1970 and rejected as out of bounds).
    return b"\x09" + struct.pack("<d", value) + b"\x10" + _varint(timestamp_ms)


# Every export encodes the same few hundred label pairs and names tens of thousands of
# times: their validation and encoding are remembered (bounded, they are a closed set).
_CACHE_LIMIT = 100_000
_label_fields: dict[tuple[str, str], bytes] = {}
_valid_names: set[str] = set()
_valid_metric_names: set[str] = set()


def _label_field(name: str, value: str) -> bytes:
    """TimeSeries field 1: one Label message, as a length-delimited field."""
    key = (name, value)
    encoded = _label_fields.get(key)
    if encoded is None:
        encoded = _field(1, _label(name, value))
        if len(_label_fields) < _CACHE_LIMIT:
            _label_fields[key] = encoded
    return encoded


def _valid(name: str, pattern: re.Pattern[str], known: set[str]) -> bool:
    if name in known:
        return True
    if not pattern.fullmatch(name):
        return False
    if len(known) < _CACHE_LIMIT:
        known.add(name)
    return True


def validate_labels(labels: Mapping[str, str]) -> list[tuple[str, str]]:
    """The label pairs sorted by name, or ``InvalidSeriesError``."""
    name = labels.get("__name__")
    if not name or not _valid(name, METRIC_NAME, _valid_metric_names):
        raise InvalidSeriesError(f"invalid or missing metric name {name!r}")
    if len(labels) > MAX_LABELS:
        raise InvalidSeriesError(f"{name}: more than {MAX_LABELS} labels")
    pairs = sorted(labels.items())
    for key, value in pairs:
        if key != "__name__" and not _valid(key, LABEL_NAME, _valid_names):
            raise InvalidSeriesError(f"{name}: invalid label name {key!r}")
        if not value:
            raise InvalidSeriesError(f"{name}: empty value for label {key!r}")
        if len(value) > MAX_LABEL_VALUE_CHARS:
            raise InvalidSeriesError(f"{name}: label {key!r} value too long")
    return pairs


# A series' label fields (validated, sorted, encoded), by its labels as built: an export
# builds each series' labels the same way, in the same order, every flush, so the pairs in
# insertion order identify it and cost one tuple, not a sort and a check per label.
_SERIES_LIMIT = 500_000
_series_labels: dict[tuple[tuple[str, str], ...], bytes] = {}


def _series_label_fields(labels: Mapping[str, str]) -> bytes:
    key = tuple(labels.items())
    encoded = _series_labels.get(key)
    if encoded is None:
        encoded = b"".join([_label_field(k, v) for k, v in validate_labels(labels)])
        if len(_series_labels) >= _SERIES_LIMIT:
            _series_labels.clear()  # series churned past the bound: start over
        _series_labels[key] = encoded
    return encoded


def encode_write_request(samples: Iterable[Sample]) -> bytes:
    """Serialise samples as a ``prometheus.WriteRequest`` (one TimeSeries per sample)."""
    out = bytearray()
    timestamps: dict[int, bytes] = {}
    for sample in samples:
        series = _series_label_fields(sample.labels)
        ts = timestamps.get(sample.timestamp_ms)
        if ts is None:
            ts = timestamps[sample.timestamp_ms] = b"\x10" + _varint(sample.timestamp_ms)
        # TimeSeries field 2: the Sample message (value, then timestamp).
        body = b"\x09" + _pack_double(sample.value) + ts
        series += b"\x12" + _varint(len(body)) + body
        out += b"\x0a" + _varint(len(series)) + series
    return bytes(out)


def compress(payload: bytes) -> bytes:
    """Snappy *block* format, as the spec requires (python-snappy's ``compress``)."""
    return bytes(snappy.compress(payload))


def classify_response(status: int, body: str, retry_after: str | None) -> None:
    """Raise per the spec's retry rules: 5xx and 429 retry, other 4xx drop."""
    if 200 <= status < 300:
        return
    wait = None
    if retry_after:
        try:
            wait = float(retry_after)
        except ValueError:
            wait = None
    if status == 429 or status >= 500:
        raise RetryableError(f"HTTP {status}: {body[:500]}", status=status, retry_after_s=wait)
    raise RejectedError(f"HTTP {status}: {body[:500]}", status=status)


def headers_for(tenant: str | None) -> dict[str, str]:
    headers = dict(HEADERS)
    if tenant:
        headers["X-Scope-OrgID"] = tenant
    return headers


def chunk(samples: Sequence[Sample], size: int) -> list[Sequence[Sample]]:
    """Split into requests of at most ``size`` samples (≤2000 is safe everywhere)."""
    return [samples[i : i + size] for i in range(0, len(samples), size)]
