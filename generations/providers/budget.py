"""How many bytes of upstream answers one process holds in memory at once.

A forwarder keeps thousands of minute-long calls open (gpt-image-2 answers ~3 MB of base64 after 60–130 s). Answers
that come back together were each read whole, parsed, decoded and verified at once: 600 calls of 3 MB drove one
forwarder past 4 GB (`bench/drain.py --latency 20 --concurrency 600 --answer-bytes 3000000`). Here an answer's body
is read only once its size fits the budget, and its bytes stay counted until the generation's files are stored;
a call waiting for the budget still holds its slot (the upstream has answered; its bytes wait at the upstream, but for
the ≤ ~0.2 MB of socket buffer and read-ahead the transport allows a waiting answer: providers/transport.py).

Our own code: asyncio has counting semaphores, not weighted ones, and acquiring a semaphore once per megabyte
would let two large answers each hold half the budget and wait for each other forever.
"""

import asyncio
from collections import deque


class AnswerBudget:
    """A weighted semaphore over bytes, first come first served (a large answer is not starved by small ones)."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = max(1, limit_bytes)
        self.used_bytes = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    async def acquire(self, nbytes: int) -> int:
        """Wait until `nbytes` fit (an answer larger than the whole budget waits for an empty budget and then goes
        alone); return what was taken, to be given back with `release`."""
        taken = min(max(nbytes, 0), self.limit_bytes)
        if not self._waiters and self.used_bytes + taken <= self.limit_bytes:
            self.used_bytes += taken
            return taken
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (taken, future)
        self._waiters.append(entry)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release(taken)  # granted just as we were cancelled: give it back
            else:
                self._waiters.remove(entry)
                self._wake()
            raise
        return taken

    def release(self, nbytes: int) -> None:
        self.used_bytes -= nbytes
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            taken, future = self._waiters[0]
            if future.cancelled():
                self._waiters.popleft()
                continue
            if self.used_bytes + taken > self.limit_bytes:
                return
            self._waiters.popleft()
            self.used_bytes += taken
            future.set_result(None)


class AnswerHold:
    """One call's share of the budget: taken by the client before it reads the answer, given back by whoever is
    done with the answer's bytes (the forwarder, once the files are stored). Releasing twice is harmless."""

    def __init__(self, budget: AnswerBudget | None) -> None:
        self._budget = budget
        self._held = 0

    async def take(self, nbytes: int) -> None:
        if self._budget is not None:
            self._held += await self._budget.acquire(nbytes)

    def release(self) -> None:
        if self._budget is not None and self._held:
            held, self._held = self._held, 0
            self._budget.release(held)
