"""The upstream transport: httpx's interface (requests, responses, errors, timeouts, MockTransport in tests) over
aiohttp's connection handling.

Why not httpx's own transport: at 300 calls in flight, httpcore (its connection pool re-scans every connection on
each request start and end) with h11 and anyio cost ~2.3 ms of CPU per call in one forwarder process, about a third
of all its work; aiohttp's pool and C HTTP parser do the same for a fraction (`bench/drain.py`: 6.6 against 8.9 ms
per generation with everything else equal, 45 → 49 generations/s).

Why not the `httpx-aiohttp` package, which does this: it maps every `aiohttp.ClientConnectionError` — a server
that dropped the connection after reading our request included — to `httpx.ConnectTimeout`, which our error
classification must read as "never sent" (retried as if free). Here only failures before a connection exists are
connect errors; anything after is a read error (the request may have been delivered and charged: an unknown
outcome). It also ignores connect retries.

Answers that wait. A forwarder keeps thousands of calls open, and answers that come back together wait for the answer
budget (generations/providers/budget.py) before their bodies are read. Left to defaults, each waiting answer kept
~0.8 MB in aiohttp's read-ahead (a 256 KiB read size, paused at twice that) and up to several MB more in the
kernel's receive buffer (autotuned to `tcp_rmem`'s maximum): at 2,000 minute-long calls of 3 MB that was ~1.5 GB
of the process and ~2 GB of kernel memory, past the kernel's `tcp_mem` pressure mark, where it drops segments and
the upstream's retransmissions back off to a 120 s timeout — answers stalled for minutes with budget held
(seen in `ss -ti`: `backoff:11 rto:120000`; `nstat`: TCPMemoryPressures, OfoPruned). So a connection is opened
with a small receive buffer and a small read-ahead, and the buffer is raised only when a large body is about to be
read (after the budget let it), so the window opens to full speed for that read.

Such a connection is then closed, not pooled: TCP never takes back window it has offered, so a buffer lowered again
under a wide-open window drops what the next answer sends into it (`nstat`: TCPRcvQDrop), and the sender backs off
as if the network lost it — 40 reads of 3 MB took 28 s instead of under one, and sometimes ran past a 30 s read
timeout. A new connection costs a handshake; a large answer read over a 64 KiB window costs a round trip per 64 KiB
with the budget held. Small answers (JSON with image URLs, errors) keep their connection.
"""

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx

# httpcore's backoff for connect retries: at once, then 0.5 s, 1 s, …
RETRY_BACKOFF_SECONDS = 0.5
# What an answer waiting for the budget may hold: in the kernel (which doubles it for its bookkeeping) and in
# aiohttp's buffer (which pauses reading at twice its read size).
WAITING_RECEIVE_BUFFER = 64 * 1024
# 16 KiB: 2,000 waiting answers hold 64 MB less than at 32 KiB; reading a 3 MB body costs ~0.6 ms more CPU.
READ_AHEAD = 16 * 1024
# While a body is read: enough for a 3 MB answer at full speed over a long path (the kernel caps it at rmem_max).
READING_RECEIVE_BUFFER = 4 * 1024 * 1024
# Bodies above this (or of unknown length) are read with the raised buffer, over a connection closed afterwards:
# read at the waiting window they would take more round trips than a new connection's handshake.
LARGE_BODY = 256 * 1024


def _receive_buffer_set(sock: Any, size: int) -> None:
    if sock is not None:
        with contextlib.suppress(OSError):  # a connection closed meanwhile: nothing left to tune
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


def _upstream_socket(addr_info: tuple[Any, ...]) -> socket.socket:  # aiohttp's SocketFactoryType
    family, type_, proto, _, _ = addr_info
    sock = socket.socket(family=family, type=type_, proto=proto)
    # Before connecting, so the window offered from the first byte matches it.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, WAITING_RECEIVE_BUFFER)
    return sock


def _mapped(error: BaseException) -> BaseException:
    """The httpx error that says what `error` means for the request: sent or not."""
    if isinstance(error, aiohttp.ClientConnectorError):
        return httpx.ConnectError(str(error))  # no connection: nothing was sent
    if isinstance(error, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(str(error))  # no pooled connection free, or connecting took too long
    if isinstance(error, (aiohttp.ServerTimeoutError, TimeoutError)):
        return httpx.ReadTimeout(str(error) or "no answer in time")
    if isinstance(error, aiohttp.InvalidURL):
        return httpx.UnsupportedProtocol(str(error))
    if isinstance(error, aiohttp.ClientResponseError):
        return httpx.RemoteProtocolError(str(error))  # an answer that is not HTTP
    if isinstance(error, aiohttp.ClientError):
        return httpx.ReadError(str(error) or type(error).__name__)  # connected, then lost
    return error


class _Body(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self._large_body_prepare()
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as error:
            raise _mapped(error) from error

    def _large_body_prepare(self) -> None:
        """A large body is read at full speed, and its connection is closed after it (see the module's docstring)."""
        length = self._response.content_length
        connection = self._response.connection  # None when the body had already arrived whole
        if (length is not None and length <= LARGE_BODY) or connection is None or connection.transport is None:
            return
        _receive_buffer_set(connection.transport.get_extra_info("socket"), READING_RECEIVE_BUFFER)
        connection.protocol.force_close()

    async def aclose(self) -> None:
        # Back to the pool when the body was read whole; closed otherwise (aiohttp decides).
        self._response.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Up to `max_connections` requests at once (more wait for a connection, up to httpx's pool timeout); failed
    connection attempts are retried `retries` times, never a request that reached the upstream. httpx's write
    timeout has no aiohttp counterpart: a stalled upload ends at the read timeout."""

    # Idle connections are dropped after httpx's own default (5 s): a server that closes an idle connection just as
    # we reuse it makes that call an unknown outcome, so we keep them no longer than before.
    def __init__(self, *, max_connections: int, retries: int = 0, keepalive_seconds: float = 5.0) -> None:
        self._max_connections = max_connections
        self._retries = retries
        self._keepalive_seconds = keepalive_seconds
        # httpx's default context (certifi's CA bundle), so both transports trust the same certificates.
        self._ssl = httpx.create_ssl_context()
        self._session: aiohttp.ClientSession | None = None

    def _session_get(self) -> aiohttp.ClientSession:
        # Created on first use: an aiohttp session belongs to the running event loop.
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, limit_per_host=0, keepalive_timeout=self._keepalive_seconds,
                ssl=self._ssl, socket_factory=_upstream_socket,
            )
            # httpx decodes Content-Encoding itself and already sets every header it sends.
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None),
                read_bufsize=READ_AHEAD,
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session_get()
        limits = request.extensions.get("timeout", {})
        timeout = aiohttp.ClientTimeout(
            total=None, connect=limits.get("pool"), sock_connect=limits.get("connect"), sock_read=limits.get("read")
        )
        body = await request.aread()  # JSON or a multipart form httpx built in memory
        attempt = 0
        while True:
            try:
                response = await session.request(
                    request.method, str(request.url), headers=request.headers.multi_items(), data=body or None,
                    allow_redirects=False, timeout=timeout,
                )
                break
            except aiohttp.ClientConnectorError as error:
                if attempt >= self._retries:
                    raise _mapped(error) from error
                await asyncio.sleep(RETRY_BACKOFF_SECONDS * 2 ** (attempt - 1) if attempt else 0)
                attempt += 1
            except (aiohttp.ClientError, TimeoutError) as error:
                raise _mapped(error) from error
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_Body(response),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (response.reason or "").encode()},
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
