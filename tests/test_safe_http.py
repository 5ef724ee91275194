"""SSRF-safe HTTP: only public addresses unless allowed, pinned connections, re-checked redirects, byte caps."""

import asyncio
import socket
import threading
import time

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from project import safe_http
from project.safe_http import (
    FetchFailed,
    ResponseTooLarge,
    UnsafeTarget,
    resolve_public_address,
    safe_get,
    safe_post,
)


def get(url: str, *, allow_private: bool, max_bytes: int = 1_000_000, deadline: float = 5.0, **kwargs):
    return asyncio.run(
        safe_get(url, max_bytes=max_bytes, deadline_seconds=deadline, allow_private=allow_private, **kwargs)
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://localhost/",
        "http://10.0.0.5/",
        "http://172.16.3.4/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "http://[::1]/",
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:169.254.169.254]/",
        "http://[2002:7f00:1::]/",
        "http://[64:ff9b::a00:1]/",
    ],
)
def test_private_loopback_link_local_and_mapped_addresses_are_refused(url: str) -> None:
    with pytest.raises(UnsafeTarget):
        get(url, allow_private=False)


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.com/x", "gopher://example.com/", "http:///nohost"]
)
def test_only_http_and_https_urls_with_a_host_are_accepted(url: str) -> None:
    with pytest.raises(UnsafeTarget):
        get(url, allow_private=True)


def test_a_name_is_refused_when_any_of_its_addresses_is_private(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(safe_http, "_getaddrinfo", lambda host, port: ["93.184.216.34", "10.0.0.7"])
    with pytest.raises(UnsafeTarget, match=r"10\.0\.0\.7"):
        resolve_public_address("mixed.example", 443, allow_private=False)


def test_a_public_name_resolves_to_its_checked_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(safe_http, "_getaddrinfo", lambda host, port: ["93.184.216.34"])
    assert resolve_public_address("cdn.example", 443, allow_private=False) == "93.184.216.34"


def test_loopback_is_fetched_only_when_private_addresses_are_allowed(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/image").respond_with_data(b"pixels")
    with pytest.raises(UnsafeTarget):
        get(httpserver.url_for("/image"), allow_private=False)
    assert len(httpserver.log) == 0

    response = get(httpserver.url_for("/image"), allow_private=True)

    assert (response.status_code, response.content) == (200, b"pixels")


@pytest.fixture
def public_cdn(monkeypatch: pytest.MonkeyPatch, httpserver: HTTPServer) -> str:
    """`cdn.example` stands for a public host: it resolves to the loopback test server, which counts as public
    here; `metadata.internal` resolves to the cloud metadata address."""
    names = {"cdn.example": ["127.0.0.1"], "metadata.internal": ["169.254.169.254"]}
    real_getaddrinfo = safe_http._getaddrinfo
    real_reason = safe_http.address_refusal_reason
    monkeypatch.setattr(
        safe_http, "_getaddrinfo", lambda host, port: names.get(host) or real_getaddrinfo(host, port)
    )
    monkeypatch.setattr(
        safe_http,
        "address_refusal_reason",
        lambda address: None if address == "127.0.0.1" else real_reason(address),
    )
    return f"http://cdn.example:{httpserver.port}"


@pytest.mark.parametrize(
    "location",
    [
        "http://metadata.internal/latest/meta-data/",
        "http://169.254.169.254/",
        "http://[::ffff:10.0.0.1]/",
        "file:///etc/passwd",
    ],
)
def test_a_public_host_redirecting_to_a_private_one_is_refused(
    public_cdn: str, httpserver: HTTPServer, location: str
) -> None:
    httpserver.expect_request("/image").respond_with_data("", status=302, headers={"Location": location})

    with pytest.raises(UnsafeTarget):
        get(f"{public_cdn}/image", allow_private=False)

    assert len(httpserver.log) == 1


def test_the_connection_goes_to_the_checked_address_with_the_original_host_header(
    public_cdn: str, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/a").respond_with_data("", status=301, headers={"Location": "/b"})
    httpserver.expect_request("/b").respond_with_data(b"done")

    response = get(f"{public_cdn}/a", allow_private=False)

    assert response.content == b"done"
    assert response.final_url == f"{public_cdn}/b"
    assert [request.headers["Host"] for request, _ in httpserver.log] == [
        f"cdn.example:{httpserver.port}"
    ] * 2


def test_too_many_redirects_fail(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/loop").respond_with_data("", status=302, headers={"Location": "/loop"})
    with pytest.raises(FetchFailed, match="redirects"):
        get(httpserver.url_for("/loop"), allow_private=True, max_redirects=3)
    assert len(httpserver.log) == 4


def test_a_declared_oversized_body_is_refused_before_reading(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/big").respond_with_data(b"x" * 5000)
    with pytest.raises(ResponseTooLarge):
        get(httpserver.url_for("/big"), allow_private=True, max_bytes=1000)


def test_a_streamed_body_is_cut_at_the_cap(httpserver: HTTPServer) -> None:
    sent = []

    def endless(request: Request) -> Response:
        def chunks():
            for _ in range(10_000):
                sent.append(1)
                yield b"y" * 4096

        return Response(chunks(), mimetype="image/png")

    httpserver.expect_request("/stream").respond_with_handler(endless)

    with pytest.raises(ResponseTooLarge):
        get(httpserver.url_for("/stream"), allow_private=True, max_bytes=64 * 1024)

    assert len(sent) < 10_000


def test_the_whole_fetch_has_a_deadline(httpserver: HTTPServer) -> None:
    def slow(request: Request) -> Response:
        time.sleep(1.5)
        return Response(b"late")

    httpserver.expect_request("/slow").respond_with_handler(slow)
    with pytest.raises(FetchFailed, match="did not finish"):
        get(httpserver.url_for("/slow"), allow_private=True, deadline=0.3)


def test_post_refuses_private_targets_and_follows_no_redirect(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data(
        "", status=307, headers={"Location": "http://169.254.169.254/"}
    )
    with pytest.raises(UnsafeTarget):
        safe_post(
            httpserver.url_for("/hook"), content=b"{}", headers={}, timeout_seconds=5, allow_private=False
        )

    response = safe_post(
        httpserver.url_for("/hook"), content=b"{}", headers={}, timeout_seconds=5, allow_private=True
    )

    assert response.status_code == 307
    assert [request.path for request, _ in httpserver.log if request.method == "POST"] == ["/hook"]


def test_post_keeps_at_most_64_kib_of_the_answer(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data(b"z" * 200_000)
    response = safe_post(
        httpserver.url_for("/hook"),
        content=b'{"a": 1}',
        headers={"Content-Type": "application/json"},
        timeout_seconds=5,
        allow_private=True,
    )
    assert (response.status_code, len(response.content)) == (200, 64 * 1024)
    assert [request.get_data() for request, _ in httpserver.log if request.method == "POST"] == [b'{"a": 1}']


def test_safe_post_gives_up_on_a_receiver_that_drips_its_answer() -> None:
    """Each byte arrives within the read timeout, so only the overall deadline can end the exchange."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    stop = threading.Event()

    def drip() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
            while not stop.is_set():
                try:
                    connection.sendall(b"x")
                except OSError:
                    return
                time.sleep(0.2)

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    try:
        with pytest.raises(FetchFailed, match="did not finish"):
            safe_post(
                f"http://127.0.0.1:{listener.getsockname()[1]}/hook",
                content=b"{}",
                headers={"Content-Type": "application/json"},
                timeout_seconds=1.0,
                allow_private=True,
            )
    finally:
        stop.set()
        listener.close()
