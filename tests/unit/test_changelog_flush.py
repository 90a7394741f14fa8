"""BoundedFlush: a flush waits for every write queued before it, and only for those."""

from __future__ import annotations

import asyncio
from typing import Any

from processors.changelog_flush import BoundedFlush


class FakeBuffer:
    """faust's ProducerBuffer in miniature: a FIFO queue drained by one sender task that
    takes a write off the queue, then hands it on (slowly)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.handed: list[Any] = []
        self.sent = asyncio.Event()

    @property
    def size(self) -> int:
        return self.queue.qsize()

    async def _send_pending(self, write: Any) -> None:
        await asyncio.sleep(0.002)
        self.handed.append(write)

    async def run_sender(self) -> None:
        send = self._send_pending  # captured at start, as faust's task does
        while True:
            write = await self.queue.get()
            await send(write)
            self.sent.set()

    async def flush_atmost(self, n: int) -> int:
        done = 0
        while done < n and self.size:
            self.sent.clear()
            try:
                await asyncio.wait_for(self.sent.wait(), 0.1)
            except TimeoutError:
                return done
            done += 1
        return done


async def test_flush_waits_for_earlier_writes_not_for_later_ones() -> None:
    buffer = FakeBuffer()
    flush = BoundedFlush(buffer)
    flush.install()
    sender = asyncio.create_task(buffer.run_sender())
    try:
        for i in range(20):
            buffer.queue.put_nowait(f"before-{i}")
        await asyncio.sleep(0.001)  # the sender has taken one off the queue: in flight

        async def keep_writing() -> None:  # a sustained backlog while the flush runs
            for i in range(1000):
                buffer.queue.put_nowait(f"after-{i}")
                await asyncio.sleep(0.0005)

        writer = asyncio.create_task(keep_writing())
        await asyncio.wait_for(buffer.flush(), 5)  # type: ignore[attr-defined]
        handed = list(buffer.handed)
        writer.cancel()
        assert [w for w in handed if w.startswith("before")] == [f"before-{i}" for i in range(20)]
        # It returned soon after the last earlier write, not when the queue was empty.
        assert buffer.size > 0
        assert len([w for w in handed if w.startswith("after")]) <= 2
        assert flush.handed_on == len(handed)
    finally:
        sender.cancel()
