"""An httpx transport that spreads requests over several small connection pools.

httpcore's pool re-scans all of its connections and queued requests whenever a request starts or ends, so its cost
per request grows with the number of connections: at 300 calls in flight that scan took more than half of a bare
client's CPU (py-spy, `bench/drain.py`). Pools of at most `POOL_SIZE` connections keep the scan short while the
whole transport still allows `max_connections`. (httpcore offers no other pool; this is the smallest fix on top.)
"""

import math
from collections.abc import AsyncIterator, Callable

import httpx

POOL_SIZE = 16


class _CountedStream(httpx.AsyncByteStream):
    """The response body; its connection counts as busy in its pool until the body is closed."""

    def __init__(self, stream: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._stream = stream
        self._release = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()


class PooledTransport(httpx.AsyncBaseTransport):
    def __init__(self, *, max_connections: int, retries: int = 0) -> None:
        count = max(1, math.ceil(max_connections / POOL_SIZE))
        size = math.ceil(max_connections / count)
        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
        self._pools = [httpx.AsyncHTTPTransport(retries=retries, limits=limits) for _ in range(count)]
        self._busy = [0] * count

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        # The least busy pool: its connections are reused, and no pool queues while another has room.
        index = min(range(len(self._busy)), key=self._busy.__getitem__)
        self._busy[index] += 1

        def release() -> None:
            self._busy[index] -= 1

        try:
            response = await self._pools[index].handle_async_request(request)
        except BaseException:
            release()
            raise
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_CountedStream(response.stream, release),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()
