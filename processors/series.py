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


class NewSeries:
    """Which series this worker has already exported, per partition.

    Prometheus' ``rate()`` and ``increase()`` take a series' first sample as its starting
    point, so the increments that created a series would be lost. A series that appears
    while this worker owns its partition is brand new (a partition's state lives in one
    place), so it is preceded by a 0 sample. Series present at the first export after a
    partition was assigned already exist downstream and are only remembered: a 0 there
    would look like a counter reset.
    """

    def __init__(self) -> None:
        self._seen: dict[int, set[tuple[str, ...]]] = {}
        self._baseline: set[int] = set()

    def begin(self, partitions: Iterable[int]) -> None:
        """Start an export of the owned ``partitions``, every one of them, empty ones too:
        the first export of a partition is its baseline, so a partition that had no views
        then and gets its first ones later must already be known, or those views' series
        would be taken as pre-existing and their first increments lost to ``rate()``."""
        self._baseline = {p for p in partitions if p not in self._seen}
        for partition in self._baseline:
            self._seen[partition] = set()

    def is_new(self, partition: int, identity: tuple[str, ...]) -> bool:
        seen = self._seen.setdefault(partition, set())
        if identity in seen:
            return False
        seen.add(identity)
        return partition not in self._baseline

    def forget(self, partition: int) -> None:
        """The partition moved away; if it comes back, its series are a baseline again."""
        self._seen.pop(partition, None)


def labels_slot_key(labels: dict[str, str]) -> str:
    """The identity of a label set in an export (the same for equal label sets)."""
    return json.dumps(labels, sort_keys=True)


def _slot(
    table: dict[tuple[int, str], dict[str, Any]],
    partition: int,
    labels: dict[str, str],
    labels_key: str | None = None,
) -> dict[str, Any]:
    key = (partition, labels_slot_key(labels) if labels_key is None else labels_key)
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
    open_views: Iterable[tuple[State, str | None]],
    now_ms: int,
    concurrency_window_ms: float,
    new_series: NewSeries | None = None,
) -> list[Sample]:
    """All series of the given partitions' state, stamped ``now_ms``.

    With ``new_series`` (whose ``begin`` the caller made with the owned partitions), a
    counter or histogram series seen for the first time gets a 0 sample one millisecond
    earlier (see ``NewSeries``).
    """
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
    # The loop of an export: once per open view (100,000 at scale), so it looks up each
    # slot once and touches only the parts of ``live`` that exist.
    get_slot = slots.get
    for view, labels_key in open_views:  # labels_key: labels_slot_key(labels), or None
        partition = view["partition"]
        if labels_key is None:
            labels_key = labels_slot_key(view["labels"])
        slot = get_slot((partition, labels_key)) or _slot(
            slots, partition, view["labels"], labels_key
        )
        slot["active"] += 1
        if (
            view["state"] in LIVE_STATES
            and now_ms - view["last_received_ms"] <= concurrency_window_ms
        ):
            slot["concurrent"] += 1
        live = view["live"]
        if not live:
            continue
        counters = live.get("c")
        if counters:
            totals = slot["c"]
            for key, n in counters.items():
                totals[key] = totals.get(key, 0) + n
        for key, values in live.get("h", {}).items():
            histogram = slot["h"].setdefault(key, {})
            buckets = HISTOGRAMS[split_key(key)[0]].buckets
            for value in values:
                observe(histogram, buckets, value)

    samples: list[Sample] = []

    def emit(
        series: list[tuple[dict[str, str], float]], identity: tuple[str, ...], partition: int
    ) -> None:
        if new_series is not None and new_series.is_new(partition, identity):
            samples.extend(Sample(labels, 0.0, now_ms - 1) for labels, _ in series)
        samples.extend(Sample(labels, value, now_ms) for labels, value in series)

    for (partition, labels_key), slot in slots.items():
        base = {**slot["labels"], "partition": str(partition)}
        for key, value in slot["c"].items():
            name, values = split_key(key)
            metric = COUNTERS[name]
            labels = {
                **base,
                **dict(zip(metric.labels, values, strict=True)),
                "__name__": metric.name,
            }
            emit([(labels, float(value))], (labels_key, key), partition)
        for key, histogram in slot["h"].items():
            name, values = split_key(key)
            metric = HISTOGRAMS[name]
            labels = {**base, **dict(zip(metric.labels, values, strict=True))}
            series: list[tuple[dict[str, str], float]] = []
            cumulative = 0
            for bound, count in zip((*metric.buckets, float("inf")), histogram["b"], strict=True):
                cumulative += count
                bucket = {**labels, "__name__": f"{metric.name}_bucket", "le": format_le(bound)}
                series.append((bucket, float(cumulative)))
            series.append(({**labels, "__name__": f"{metric.name}_sum"}, float(histogram["sum"])))
            series.append(
                ({**labels, "__name__": f"{metric.name}_count"}, float(histogram["count"]))
            )
            emit(series, (labels_key, key), partition)
        # Gauges are not rates: they need no 0 before their first value.
        for gauge, value in (
            ("concurrent_viewers", slot["concurrent"]),
            ("active_views", slot["active"]),
        ):
            samples.append(Sample({**base, "__name__": GAUGES[gauge].name}, float(value), now_ms))
    return samples
