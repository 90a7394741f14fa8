"""faust's producer flush, made to mean "every table write queued before it is handed on".

``ProducerBuffer.flush`` gives up after 0.1 s without a completed send even when writes are
still queued, and faust's consumer commits source offsets right after it. Under load a
kill -9 then lost changelog writes of committed events (seen in the crash test).

``BoundedFlush`` waits for the writes queued *before* the flush (aiokafka's own flush then
waits for the broker's acks). That keeps "changelog before commit" true, since a commit
covers only messages handled before it started, and "export only what is durable", without
waiting for writes queued meanwhile: under a sustained backlog the buffer never empties,
and a flush that waited for it took many seconds.
"""

from __future__ import annotations

import asyncio
from typing import Any


class BoundedFlush:
    """Counts the writes faust's buffer hands to aiokafka; flushes up to a snapshot."""

    def __init__(self, buffer: Any) -> None:
        self._buffer = buffer
        self._send_pending = buffer._send_pending
        self.in_flight = 0
        self.handed_on = 0

    def install(self) -> None:
        """Wrap the buffer's sender (before the producer starts) and replace its flush."""
        self._buffer._send_pending = self._tracked_send
        self._buffer.flush = self.flush

    async def _tracked_send(self, future: Any) -> None:
        # The buffer's task takes a write off its queue before handing it to aiokafka, so
        # "queue empty" is not "all handed on": the write being handed on counts too.
        self.in_flight += 1
        try:
            await self._send_pending(future)
        finally:
            self.in_flight -= 1
            self.handed_on += 1

    async def flush(self) -> None:
        # One FIFO queue, one sender: the next `target - handed_on` writes handed on are
        # exactly those queued (or being handed on) now.
        buffer = self._buffer
        target = self.handed_on + self.in_flight + buffer.size
        while self.handed_on < target:
            if buffer.size:
                await buffer.flush_atmost(min(buffer.size, target - self.handed_on))
            else:
                await asyncio.sleep(0.001)
