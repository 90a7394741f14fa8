"""Cumulative counters and classic histograms per (partition, label set).

An aggregate only ever grows. It records, per source topic, the offset of the last
message applied to it, so a message replayed after a crash is applied at most once.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Mapping
from typing import Any

from processors.catalog import HISTOGRAMS, split_key
from processors.view import Deltas

Aggregate = dict[str, Any]


def aggregate_key(partition: int, labels: Mapping[str, str]) -> str:
    """Table key of the aggregate; the partition is part of it so partitions never mix."""
    return f"a|{partition}|{json.dumps(labels, sort_keys=True, separators=(',', ':'))}"


def new_aggregate(partition: int, labels: Mapping[str, str]) -> Aggregate:
    return {"partition": partition, "labels": dict(labels), "offsets": {}, "c": {}, "h": {}}


def observe(histogram: dict[str, Any], buckets: tuple[float, ...], value: float) -> None:
    """Add one observation to a ``{"b": [per-bucket counts], "sum", "count"}`` histogram."""
    counts = histogram.setdefault("b", [0] * (len(buckets) + 1))
    # bisect_left: a value equal to a bound belongs to that bucket (le is inclusive).
    counts[bisect.bisect_left(buckets, value)] += 1
    histogram["sum"] = histogram.get("sum", 0.0) + value
    histogram["count"] = histogram.get("count", 0) + 1


def add_deltas(agg: Aggregate, deltas: Mapping[str, Any]) -> None:
    """Fold counter increments and histogram observations into ``agg``."""
    counters = agg["c"]
    for key, n in deltas.get("c", {}).items():
        counters[key] = counters.get(key, 0) + n
    histograms = agg["h"]
    for key, values in deltas.get("h", {}).items():
        buckets = HISTOGRAMS[split_key(key)[0]].buckets
        histogram = histograms.setdefault(key, {})
        for value in values:
            observe(histogram, buckets, value)


def apply_once(agg: Aggregate, topic: str, offset: int, deltas: Deltas) -> bool:
    """Apply the deltas of message (topic, offset) unless it was applied already."""
    if agg["offsets"].get(topic, -1) >= offset:
        return False
    add_deltas(agg, deltas)
    agg["offsets"][topic] = offset
    return True
