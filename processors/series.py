"""From a snapshot of aggregates and open views to remote-write samples.

Counter value = the aggregate + the live increments of the label set's open views, so a
heartbeat needs no aggregate write, yet the exported total includes it. Every series
carries ``partition``: a partition's numbers live in exactly one place (its aggregates),
so whichever worker owns the partition exports the same series and continues them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from processors.aggregates import Aggregate, observe
from processors.catalog import COUNTERS, GAUGES, HISTOGRAMS, split_key
from processors.remote_write import Sample, format_le
from processors.view import State

LIVE_STATES = ("loading", "playing", "buffering")


def _slot(
    table: dict[tuple[int, str], dict[str, Any]], partition: int, labels: dict[str, str]
) -> dict[str, Any]:
    key = (partition, json.dumps(labels, sort_keys=True))
    slot = table.get(key)
    if slot is None:
        slot = table[key] = {
            "partition": partition,
            "labels": labels,
            "c": {},
            "h": {},
            "concurrent": 0,
            "active": 0,
        }
    return slot


def build_samples(
    aggregates: Iterable[Aggregate],
    open_views: Iterable[State],
    now_ms: int,
    concurrency_window_ms: float,
) -> list[Sample]:
    """All series of the given partitions' state, stamped ``now_ms``."""
    slots: dict[tuple[int, str], dict[str, Any]] = {}
    for agg in aggregates:
        slot = _slot(slots, agg["partition"], agg["labels"])
        slot["c"].update(agg["c"])
        slot["h"].update(
            {
                k: {"b": list(h["b"]), "sum": h["sum"], "count": h["count"]}
                for k, h in agg["h"].items()
            }
        )
    for view in open_views:
        slot = _slot(slots, view["partition"], view["labels"])
        slot["active"] += 1
        if (
            view["state"] in LIVE_STATES
            and now_ms - view["last_received_ms"] <= concurrency_window_ms
        ):
            slot["concurrent"] += 1
        live = view["live"]
        for key, n in live.get("c", {}).items():
            slot["c"][key] = slot["c"].get(key, 0) + n
        for key, values in live.get("h", {}).items():
            histogram = slot["h"].setdefault(key, {})
            buckets = HISTOGRAMS[split_key(key)[0]].buckets
            for value in values:
                observe(histogram, buckets, value)

    samples: list[Sample] = []
    for slot in slots.values():
        base = {**slot["labels"], "partition": str(slot["partition"])}
        for key, value in slot["c"].items():
            name, values = split_key(key)
            metric = COUNTERS[name]
            labels = {
                **base,
                **dict(zip(metric.labels, values, strict=True)),
                "__name__": metric.name,
            }
            samples.append(Sample(labels, float(value), now_ms))
        for key, histogram in slot["h"].items():
            name, values = split_key(key)
            metric = HISTOGRAMS[name]
            labels = {**base, **dict(zip(metric.labels, values, strict=True))}
            cumulative = 0
            for bound, count in zip((*metric.buckets, float("inf")), histogram["b"], strict=True):
                cumulative += count
                samples.append(
                    Sample(
                        {**labels, "__name__": f"{metric.name}_bucket", "le": format_le(bound)},
                        float(cumulative),
                        now_ms,
                    )
                )
            samples.append(
                Sample(
                    {**labels, "__name__": f"{metric.name}_sum"}, float(histogram["sum"]), now_ms
                )
            )
            samples.append(
                Sample(
                    {**labels, "__name__": f"{metric.name}_count"},
                    float(histogram["count"]),
                    now_ms,
                )
            )
        samples.append(
            Sample(
                {**base, "__name__": GAUGES["concurrent_viewers"].name},
                float(slot["concurrent"]),
                now_ms,
            )
        )
        samples.append(
            Sample({**base, "__name__": GAUGES["active_views"].name}, float(slot["active"]), now_ms)
        )
    return samples
