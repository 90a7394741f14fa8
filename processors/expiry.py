"""Expiry: close views nobody ended, purge ended views once late events are not expected.

Timers cannot decide for a partition's stream (its messages may be in flight), so the scan
only *asks*: it sends a close or purge request to the view's partition of the control
topic, and the batch step decides there, in order with the view's events
(processors.step.on_close / on_purge). The scan reads only the views that are due
(processors.partition_index deadlines), so its cost does not grow with the views kept.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from processors.metrics import ProcessorMetrics
from processors.partition_index import VIEW_PREFIX, PartitionIndex


class Expiry:
    def __init__(
        self,
        send_request: Callable[[bytes, bytes, int], Any],
        clock: Callable[[], float],
        metrics: ProcessorMetrics,
    ) -> None:
        self._send = send_request
        self._clock = clock
        self._metrics = metrics

    def scan(self, indexes: Iterable[PartitionIndex]) -> int:
        """Send the requests of every due view of ``indexes`` (the owned partitions that
        are caught up: a lagging partition's views may have events waiting). Returns how
        many were sent."""
        started = time.monotonic()
        now_ms = self._clock() * 1000
        sent = 0
        for index in indexes:
            for key, is_open in index.due(now_ms):
                view_id = key[len(VIEW_PREFIX) :].decode()
                op = "close" if is_open else "purge"
                body = json.dumps({"op": op, "view_id": view_id}).encode()
                self._send(view_id.encode(), body, index.partition)
                sent += 1
        self._metrics.expiry_scan.observe(time.monotonic() - started)
        self._metrics.expiry_requests.inc(sent)
        return sent
