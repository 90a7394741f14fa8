"""Back-pressure: a bound on in-flight events and a per-organisation rate limit."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from ingest.errors import OverloadedError, RateLimitedError


class InFlightLimit:
    """Counts events between parse and Kafka acknowledgement; refuses past the bound.

    Refusing early with 429 keeps memory bounded and tells clients to back off while
    Kafka is slow, instead of queueing requests until they time out.
    """

    __slots__ = ("current", "limit", "retry_after_s")

    def __init__(self, limit: int, retry_after_s: int = 1) -> None:
        self.limit = limit
        self.current = 0
        self.retry_after_s = retry_after_s

    def acquire(self, n: int) -> None:
        if self.current + n > self.limit:
            raise OverloadedError(
                "collector is at its in-flight limit; retry later",
                retry_after_s=self.retry_after_s,
            )
        self.current += n

    def release(self, n: int) -> None:
        self.current -= n


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class OrgRateLimit:
    """Token bucket per organisation, in events per second."""

    __slots__ = ("_buckets", "_clock", "burst", "rate")

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, org: str, n: int) -> None:
        """Consume ``n`` events for ``org`` or raise ``RateLimitedError``."""
        if self.rate <= 0:
            return
        now = self._clock()
        bucket = self._buckets.get(org)
        if bucket is None:
            bucket = self._buckets[org] = _Bucket(float(self.burst), now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens < n:
            wait_s = max(1, math.ceil((n - bucket.tokens) / self.rate))
            raise RateLimitedError(
                f"organisation exceeded {self.rate:g} events/s", retry_after_s=wait_s
            )
        bucket.tokens -= n
