"""A bounded, retrying sender that runs in its own thread, off the event loop.

Used for Prometheus remote write and Loki push alike. Requests are sent in order. On a
retryable failure (5xx, 429, transport error) the head request is retried with
exponential backoff, honouring ``Retry-After``; a rejected request (other 4xx) is dropped
and counted. When more than ``max_pending`` requests wait, the oldest is dropped and
counted, so a long outage costs bounded memory and is never silent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from processors.errors import RejectedError, RetryableError

logger = logging.getLogger(__name__)

MIN_BACKOFF_S = 0.25
MAX_BACKOFF_S = 30.0


@dataclass(frozen=True, slots=True)
class PushRequest:
    body: bytes
    tenant: str | None
    items: int  # samples or log lines, for the dropped counter


class PushMetrics:
    """The processor's own metrics about pushes (exposed on its /metrics)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "openqoe_processor_push_requests",
            "Push attempts by target and result (ok, retry, rejected).",
            ["target", "result"],
            registry=registry,
        )
        self.dropped = Counter(
            "openqoe_processor_push_dropped_items",
            "Samples or log lines dropped, by target and reason (overflow, rejected).",
            ["target", "reason"],
            registry=registry,
        )
        self.pending = Gauge(
            "openqoe_processor_push_pending_requests",
            "Requests waiting to be sent, by target.",
            ["target"],
            registry=registry,
        )
        self.duration = Histogram(
            "openqoe_processor_push_duration_seconds",
            "Duration of one push attempt, by target.",
            ["target"],
            registry=registry,
        )


class Pusher:
    def __init__(
        self,
        target: str,
        send: Callable[[PushRequest], None],
        max_pending: int,
        metrics: PushMetrics,
    ) -> None:
        self.target = target
        self._send = send
        self._max_pending = max_pending
        self._metrics = metrics
        self._queue: deque[PushRequest] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._busy = False
        self._thread = threading.Thread(target=self._run, name=f"push-{target}", daemon=True)

    def start(self) -> None:
        """Start the sender thread (idempotent)."""
        with self._cond:
            if not self._thread.is_alive() and not self._stopping:
                self._thread.start()

    def submit(self, request: PushRequest) -> None:
        with self._cond:
            while len(self._queue) >= self._max_pending:
                dropped = self._queue.popleft()
                self._metrics.dropped.labels(self.target, "overflow").inc(dropped.items)
                logger.warning(
                    "%s: buffer full, dropped a request of %d items", self.target, dropped.items
                )
            self._queue.append(request)
            self._metrics.pending.labels(self.target).set(len(self._queue))
            self._cond.notify_all()

    def idle(self) -> bool:
        with self._cond:
            return not self._queue and not self._busy

    def wait_idle(self, timeout_s: float) -> bool:
        """Block until everything submitted was sent or dropped (or the timeout)."""
        if not self._thread.is_alive():
            return not self._queue
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._queue or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def stop(self, timeout_s: float) -> None:
        """Try to send what is pending for up to ``timeout_s``, then stop."""
        self.wait_idle(timeout_s)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        backoff = MIN_BACKOFF_S
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                request = self._queue[0]
                self._busy = True
            started = time.monotonic()
            outcome = "ok"
            wait = 0.0
            try:
                self._send(request)
            except RetryableError as exc:
                outcome = "retry"
                wait = exc.retry_after_s if exc.retry_after_s is not None else backoff
                backoff = min(MAX_BACKOFF_S, backoff * 2)
                logger.warning("%s push failed, retrying in %.2fs: %s", self.target, wait, exc)
            except RejectedError as exc:
                outcome = "rejected"
                self._metrics.dropped.labels(self.target, "rejected").inc(request.items)
                logger.error(
                    "%s push rejected, dropping %d items: %s", self.target, request.items, exc
                )
            finally:
                self._metrics.duration.labels(self.target).observe(time.monotonic() - started)
                self._metrics.requests.labels(self.target, outcome).inc()
            with self._cond:
                self._busy = False
                if outcome != "retry":
                    backoff = MIN_BACKOFF_S
                    # The head may have been dropped by an overflow meanwhile.
                    if self._queue and self._queue[0] is request:
                        self._queue.popleft()
                self._metrics.pending.labels(self.target).set(len(self._queue))
                self._cond.notify_all()
                if wait:
                    self._cond.wait(wait)
