"""Expected totals for generated traffic, computed by folding the events in one pass.

The crash and rebalance tests compare what the distributed pipeline exported (after
kill -9, restarts and partition moves) with a single, uninterrupted, in-process pass
over the same events. The per-view definitions themselves are checked against
hand-computed values in tests/unit/test_view.py and tests/scenarios.py.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from typing import Any

from bench.traffic import new_view, view_script
from ingest.validation import validate_event
from processors.aggregates import add_deltas, new_aggregate
from processors.catalog import COUNTERS, HISTOGRAMS, split_key
from processors.dims import DimensionCaps
from processors.remote_write import format_le
from processors.step import on_close, on_event
from schemas import player_event_codec, player_event_reader


def generate(org: str, views: int, seed: int) -> dict[str, list[dict[str, Any]]]:
    """Realistic views (bench.traffic), all within the last few minutes."""
    rng = random.Random(seed)
    start = int(time.time() * 1000) - 20 * 60 * 1000
    out = {}
    for i in range(views):
        view = new_view(rng, org)
        events = view_script(rng, view, start + i * 1000, 10_000)
        out[view["view_id"]] = events
    return out


class Expected:
    def __init__(self, events_by_view: dict[str, list[dict[str, Any]]]) -> None:
        now = int(time.time() * 1000)
        caps = DimensionCaps()
        self.summaries: dict[str, dict[str, Any]] = {}
        total = new_aggregate(0, {})
        for view_id, events in events_by_view.items():
            view = None
            for offset, raw in enumerate(events):
                record = validate_event(raw, now_ms=now, org_id=None)
                assert isinstance(record, dict), record
                event = player_event_reader().decode(player_event_codec().encode(record))
                step = on_event(view, -1, event, offset, 0, caps.labels)
                view = step.view or view
                if step.deltas:
                    add_deltas(total, step.deltas)
                if step.summary:
                    self.summaries[view_id] = step.summary
            assert view is not None
            if not view["closed"]:
                step = on_close(view, -1, 0, now + 10**9, 0)
                add_deltas(total, step.deltas or {})
                self.summaries[view_id] = step.summary or {}
        self.aggregate = total

    def counters(self) -> dict[tuple[str, tuple[str, ...]], float]:
        """(metric name, extra label values) -> value."""
        out: dict[tuple[str, tuple[str, ...]], float] = defaultdict(float)
        for key, value in self.aggregate["c"].items():
            name, values = split_key(key)
            out[(COUNTERS[name].name, tuple(values))] += value
        return dict(out)

    def histograms(self) -> dict[tuple[str, tuple[str, ...]], float]:
        """(series name, extra label values [+ le]) -> value, for _bucket, _count and _sum."""
        out: dict[tuple[str, tuple[str, ...]], float] = defaultdict(float)
        for key, histogram in self.aggregate["h"].items():
            name, values = split_key(key)
            metric = HISTOGRAMS[name]
            cumulative = 0
            for bound, count in zip((*metric.buckets, float("inf")), histogram["b"], strict=True):
                cumulative += count
                out[(f"{metric.name}_bucket", (*values, format_le(bound)))] += cumulative
            out[(f"{metric.name}_count", tuple(values))] += histogram["count"]
            out[(f"{metric.name}_sum", tuple(values))] += histogram["sum"]
        return dict(out)
