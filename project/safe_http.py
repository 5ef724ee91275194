"""HTTP to addresses we do not control (upstream image URLs, tenant webhooks) without SSRF.

Every hop is checked the same way: only http/https, the host resolved once and refused unless every address it
resolves to is public, the connection made to that checked address (the Host header and TLS SNI still name the
original host, so virtual hosting and certificate checks work), redirects re-checked hop by hop, the body counted
while it streams and cut at a byte cap. `allow_private` lifts only the address check: tests and the local sandbox
live on loopback.

Proxies from the environment are ignored on purpose: a proxy would connect on our behalf to whatever it resolves.
"""

import asyncio
import contextlib
import ipaddress
import socket
from dataclasses import dataclass, field
from typing import BinaryIO
from urllib.parse import urljoin

import httpx

WEBHOOK_RESPONSE_MAX_BYTES = 64 * 1024
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")


class SafeHttpError(Exception):
    """Base of everything this module raises; the message says what happened, never a secret."""


class UnsafeTarget(SafeHttpError):
    """The URL, or a redirect it led to, points somewhere we refuse to connect to."""


class ResponseTooLarge(SafeHttpError):
    """The body went past the byte cap; reading stopped there."""


class FetchFailed(SafeHttpError):
    """Connecting, sending or reading failed, the deadline passed, or there were too many redirects."""


@dataclass
class SafeResponse:
    status_code: int
    headers: dict[str, str]
    content: bytes
    final_url: str
    redirects: list[str] = field(default_factory=list)


def _getaddrinfo(host: str, port: int) -> list[str]:
    """The one place names are resolved (tests replace it to make a name resolve where they need)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeTarget(f"cannot resolve host {host!r}: {exc}") from exc
    return [str(info[4][0]) for info in infos]


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """IPv6 forms that carry an IPv4 address a router or the kernel may end up connecting to."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64_WELL_KNOWN:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_refusal_reason(address: str) -> str | None:
    """Why connecting to `address` would reach something private, or None when it is a public unicast address."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return f"{address!r} is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            inner = address_refusal_reason(str(embedded))
            return f"{ip} embeds {embedded}: {inner}" if inner else None
    for attribute, label in (
        ("is_unspecified", "unspecified"),
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_private", "private"),
        ("is_reserved", "reserved"),
    ):
        if getattr(ip, attribute):
            return f"{ip} is a {label} address"
    if not ip.is_global:
        return f"{ip} is not a globally routable address"
    return None


def resolve_public_address(host: str, port: int, *, allow_private: bool) -> str:
    """Resolve `host` once and return the address to connect to; refuse if any of its addresses is not public.

    Every address is checked, not just the first: a name that resolves to both a public and a private address
    would otherwise win on a retry or a different resolver order.
    """
    if not host:
        raise UnsafeTarget("the URL has no host")
    literal = host.strip("[]")
    try:
        addresses = [str(ipaddress.ip_address(literal.split("%", 1)[0]))]
    except ValueError:
        addresses = _getaddrinfo(host, port)
    if not addresses:
        raise UnsafeTarget(f"host {host!r} resolved to no address")
    if not allow_private:
        for address in addresses:
            reason = address_refusal_reason(address)
            if reason:
                raise UnsafeTarget(f"host {host!r} resolves to {address}, refused: {reason}")
    return addresses[0]


@dataclass(frozen=True)
class _PinnedRequest:
    url: httpx.URL
    headers: dict[str, str]
    extensions: dict[str, str]


def _pin(url: str, *, allow_private: bool) -> _PinnedRequest:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise UnsafeTarget(f"invalid URL: {exc}") from exc
    if parsed.scheme not in ("http", "https"):
        raise UnsafeTarget(f"scheme {parsed.scheme!r} is not allowed (only http and https)")
    if not parsed.host:
        raise UnsafeTarget("the URL has no host")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    address = resolve_public_address(parsed.host, port, allow_private=allow_private)
    host_header = parsed.netloc.decode("ascii").rsplit("@", 1)[-1]
    extensions = {"sni_hostname": parsed.host} if parsed.scheme == "https" else {}
    return _PinnedRequest(
        url=parsed.copy_with(host=address), headers={"Host": host_header}, extensions=extensions
    )


def _client_timeout(seconds: float) -> httpx.Timeout:
    return httpx.Timeout(connect=min(seconds, 10.0), read=seconds, write=seconds, pool=seconds)


async def _read_capped(response: httpx.Response, max_bytes: int, sink: BinaryIO | None = None) -> bytes:
    """The body, cut at `max_bytes`. With a `sink`, chunks are written there as they arrive (and b"" returned),
    so a large body is never held whole in memory."""
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise ResponseTooLarge(f"response declares {declared} bytes, more than the {max_bytes}-byte cap")
    chunks: list[bytes] = []
    received = 0
    async for chunk in response.aiter_bytes():
        received += len(chunk)
        if received > max_bytes:
            raise ResponseTooLarge(f"response exceeded the {max_bytes}-byte cap")
        if sink is None:
            chunks.append(chunk)
        else:
            sink.write(chunk)
    return b"".join(chunks)


async def _safe_get_hops(
    client: httpx.AsyncClient,
    url: str,
    *,
    max_bytes: int,
    allow_private: bool,
    max_redirects: int,
    sink: BinaryIO | None = None,
) -> SafeResponse:
    redirects: list[str] = []
    current = url
    while True:
        # Resolution blocks; keep the event loop free for the other downloads in flight.
        pinned = await asyncio.to_thread(_pin, current, allow_private=allow_private)
        request = client.build_request(
            "GET", pinned.url, headers=pinned.headers, extensions=pinned.extensions
        )
        try:
            response = await client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise FetchFailed(f"GET {current} failed: {type(exc).__name__}: {exc}") from exc
        try:
            location = response.headers.get("location")
            if response.status_code in _REDIRECT_STATUSES and location:
                if len(redirects) >= max_redirects:
                    raise FetchFailed(f"more than {max_redirects} redirects starting at {url}")
                current = urljoin(current, location)
                redirects.append(current)
                continue
            try:
                content = await _read_capped(response, max_bytes, sink)
            except httpx.HTTPError as exc:
                raise FetchFailed(f"reading {current} failed: {type(exc).__name__}: {exc}") from exc
            return SafeResponse(
                status_code=response.status_code,
                headers=dict(response.headers),
                content=content,
                final_url=current,
                redirects=redirects,
            )
        finally:
            await response.aclose()


async def safe_get(
    url: str,
    *,
    max_bytes: int,
    deadline_seconds: float,
    allow_private: bool,
    max_redirects: int = 3,
    sink: BinaryIO | None = None,
    client: httpx.AsyncClient | None = None,
) -> SafeResponse:
    """GET `url` with every SSRF check; the whole exchange, redirects included, ends by `deadline_seconds`.
    With `sink`, the final body is streamed into it and `content` is empty. `client` (from `safe_get_client()`)
    lets many fetches share one client instead of building one (and its TLS context) per fetch."""
    async with contextlib.AsyncExitStack() as stack:
        if client is None:
            client = await stack.enter_async_context(safe_get_client(timeout_seconds=deadline_seconds))
        try:
            async with asyncio.timeout(deadline_seconds):
                return await _safe_get_hops(
                    client, url, max_bytes=max_bytes, allow_private=allow_private, max_redirects=max_redirects,
                    sink=sink,
                )
        except TimeoutError as exc:
            raise FetchFailed(f"GET {url} did not finish within {deadline_seconds} s") from exc


def safe_get_client(*, timeout_seconds: float) -> httpx.AsyncClient:
    """A client for `safe_get(client=...)`. It never keeps a connection alive: connections are pooled by address,
    and a connection opened for one pinned host name (TLS SNI, Host) must not carry a request for another."""
    return httpx.AsyncClient(
        timeout=_client_timeout(timeout_seconds),
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=0),
    )


def safe_post(
    url: str,
    *,
    content: bytes,
    headers: dict[str, str],
    timeout_seconds: float,
    allow_private: bool,
    max_response_bytes: int = WEBHOOK_RESPONSE_MAX_BYTES,
) -> SafeResponse:
    """POST `content` to `url` (synchronously), never following redirects; the response body is capped and the
    whole exchange ends by `timeout_seconds`, so a receiver dripping bytes cannot hold a worker."""
    return asyncio.run(
        _safe_post(
            url,
            content=content,
            headers=headers,
            timeout_seconds=timeout_seconds,
            allow_private=allow_private,
            max_response_bytes=max_response_bytes,
        )
    )


async def _safe_post(
    url: str,
    *,
    content: bytes,
    headers: dict[str, str],
    timeout_seconds: float,
    allow_private: bool,
    max_response_bytes: int,
) -> SafeResponse:
    pinned = await asyncio.to_thread(_pin, url, allow_private=allow_private)
    async with httpx.AsyncClient(
        timeout=_client_timeout(timeout_seconds), follow_redirects=False, trust_env=False
    ) as client:
        request = client.build_request(
            "POST",
            pinned.url,
            content=content,
            headers={**headers, **pinned.headers},
            extensions=pinned.extensions,
        )
        try:
            async with asyncio.timeout(timeout_seconds):
                response = await client.send(request, stream=True)
                try:
                    chunks: list[bytes] = []
                    received = 0
                    # A webhook receiver's answer is only kept for display: cut it quietly instead of failing.
                    async for chunk in response.aiter_bytes():
                        chunks.append(chunk[: max_response_bytes - received])
                        received += len(chunk)
                        if received >= max_response_bytes:
                            break
                finally:
                    await response.aclose()
        except TimeoutError as exc:
            raise FetchFailed(f"POST {url} did not finish within {timeout_seconds} s") from exc
        except httpx.HTTPError as exc:
            raise FetchFailed(f"POST {url} failed: {type(exc).__name__}: {exc}") from exc
    return SafeResponse(
        status_code=response.status_code,
        headers=dict(response.headers),
        content=b"".join(chunks),
        final_url=url,
    )
