"""The upstream transport (httpx over aiohttp) against real servers on loopback: `max_connections` calls really are
open at once and no more, connections are reused, encoded bodies are decoded, and every failure says whether the
request could have reached the upstream — which decides whether a retry may cost us twice."""

import array
import asyncio
import fcntl
import gzip
import socket
import termios
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from generations.providers import AIHubMixClient, ProviderCall, TransientProviderError, UnknownOutcomeError
from generations.providers.transport import AiohttpTransport

CALLS = 40
ANSWER = bytes(range(256)) * (3_000_000 // 256)  # a gpt-image-2-sized answer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.record(self)
        if self.path.startswith("/together"):
            try:
                self.server.barrier.wait()
                self._reply(200, b"ok")
            except threading.BrokenBarrierError:
                self._reply(503, b"not all at once")
        elif self.path == "/answer":
            self._reply(200, ANSWER)
        elif self.path == "/gzip":
            self._reply(200, gzip.compress(b'{"hello": "world"}'), {"Content-Encoding": "gzip"})
        elif self.path == "/slow":
            with self.server.lock:
                self.server.open_now += 1
                self.server.most_open = max(self.server.most_open, self.server.open_now)
            threading.Event().wait(0.2)
            with self.server.lock:
                self.server.open_now -= 1
            self._reply(200, b"ok")
        else:
            self._reply(200, b"x" * 100_000)

    def do_POST(self) -> None:
        self.server.record(self)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path.startswith("/drop"):
            self.close_connection = True  # read the request, then hang up without answering
            return
        if self.path.startswith("/hang"):
            threading.Event().wait(2)
            return
        self._reply(200, b'{"echo": %d, "type": "%s"}' % (len(body), self.headers["Content-Type"].encode()))

    def _reply(self, status: int, body: bytes, headers: dict | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # 40 connections at once: the default backlog of 5 drops SYNs, retried after 1 s

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.barrier = threading.Barrier(CALLS, timeout=10)
        self.connections: set[int] = set()
        self.requests: list[tuple[str, str]] = []
        self.open_now = self.most_open = 0

    def record(self, handler: BaseHTTPRequestHandler) -> None:
        with self.lock:
            self.connections.add(handler.client_address[1])
            self.requests.append((handler.command, handler.path))


@pytest.fixture
def server():
    httpd = _Server()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _url(server: _Server, path: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def _run(coroutine_function, *, max_connections: int = CALLS, retries: int = 0, timeout: float = 30):
    async def main():
        transport = AiohttpTransport(max_connections=max_connections, retries=retries)
        async with httpx.AsyncClient(transport=transport, timeout=timeout) as client:
            return await coroutine_function(client)

    return asyncio.run(main())


def test_max_connections_calls_are_open_at_once(server: _Server) -> None:
    async def calls(client):
        return await asyncio.gather(*(client.get(_url(server, f"/together/{i}")) for i in range(CALLS)))

    responses = _run(calls)

    assert [r.status_code for r in responses] == [200] * CALLS
    assert len(server.connections) == CALLS


def test_no_more_than_max_connections_are_open_and_the_rest_wait_their_turn(server: _Server) -> None:
    async def calls(client):
        return await asyncio.gather(*(client.get(_url(server, "/slow")) for _ in range(12)))

    responses = _run(calls, max_connections=4)

    assert [r.status_code for r in responses] == [200] * 12
    assert server.most_open == 4
    assert len(server.connections) == 4  # each connection was reused once its body was read


def test_a_connection_is_reused_once_its_body_is_read(server: _Server) -> None:
    async def calls(client):
        sizes = []
        for _ in range(10):
            response = await client.get(_url(server, "/big"))
            sizes.append(len(response.content))
        return sizes

    assert _run(calls) == [100_000] * 10
    assert len(server.connections) == 1


def test_a_body_left_unread_does_not_leak_its_connection(server: _Server) -> None:
    async def calls(client):
        for _ in range(5):
            async with client.stream("GET", _url(server, "/big")) as response:
                assert response.status_code == 200  # closed without reading the 100 kB body
        return (await client.get(_url(server, "/big"))).status_code

    assert _run(calls, max_connections=1) == 200  # one connection allowed: each one was given back


def test_an_encoded_body_is_decoded_and_json_and_multipart_bodies_are_sent_whole(server: _Server) -> None:
    async def calls(client):
        decoded = (await client.get(_url(server, "/gzip"))).json()
        as_json = (await client.post(_url(server, "/echo"), json={"prompt": "a" * 1000})).json()
        form = (await client.post(_url(server, "/echo"), data={"prompt": "a"},
                                  files=[("image", ("a.png", b"\x89PNG" + b"0" * 5000, "image/png"))])).json()
        return decoded, as_json, form

    decoded, as_json, form = _run(calls)

    assert decoded == {"hello": "world"}
    assert as_json == {"echo": len('{"prompt":"' + "a" * 1000 + '"}'), "type": "application/json"}
    assert form["echo"] > 5000 and form["type"].startswith("multipart/form-data; boundary=")


def _client(base_url: str, *, read_timeout: float = 30.0) -> AIHubMixClient:
    return AIHubMixClient(api_key="k", base_url=base_url, tasks_url=base_url, read_timeout_seconds=read_timeout,
                          connect_retries=2)


def _call() -> ProviderCall:
    return ProviderCall(model_id="openai/gpt-image-2", family="openai_compat", operation="generate",
                        body={"model": "gpt-image-2", "prompt": "a lighthouse"})


def test_a_refused_connection_is_transient_and_retried_before_giving_up() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound, never listening: connections are refused

    async def main():
        async with _client(f"http://127.0.0.1:{port}/v1") as client:
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(TransientProviderError) as caught:
                await client.run(_call())
            return caught.value, loop.time() - started

    error, seconds = asyncio.run(main())

    assert error.code == "upstream_unreachable"
    assert seconds >= 0.5  # two retries: at once, then after 0.5 s


def test_a_connection_dropped_after_the_request_is_an_unknown_outcome_sent_once(server: _Server) -> None:
    async def main():
        async with _client(_url(server, "/drop")) as client:
            with pytest.raises(UnknownOutcomeError) as caught:
                await client.run(_call())
            return caught.value

    assert asyncio.run(main()).code == "upstream_connection_lost"
    assert server.requests == [("POST", "/drop/images/generations")]  # never resent: it may have been charged


def test_no_answer_within_the_read_timeout_is_an_unknown_outcome(server: _Server) -> None:
    async def main():
        async with _client(_url(server, "/hang"), read_timeout=0.3) as client:
            with pytest.raises(UnknownOutcomeError) as caught:
                await client.run(_call())
            return caught.value

    assert asyncio.run(main()).code == "upstream_timeout"
    assert server.requests == [("POST", "/hang/images/generations")]


def test_answers_waiting_to_be_read_hold_little_memory_and_then_arrive_whole(server: _Server) -> None:
    """A forwarder reads an answer's body only once the answer budget lets it; meanwhile the answer must not sit in
    the kernel's receive buffer or aiohttp's read-ahead (thousands of 3 MB answers did: tcp_mem pressure, dropped
    segments, stalls). Here 20 answers of 3 MB wait unread, then are read one after another; twice.

    The second round must not stall either: a connection whose buffer was raised for a large body and lowered again
    under the window it had offered dropped what the next answer sent, and the sender backed off for seconds (40
    reads took 28 s; sometimes one ran past the read timeout). A read timeout of 5 s catches that."""

    def held(response: httpx.Response) -> int:
        aiohttp_response = response.stream._stream._response  # httpx's bound stream → our _Body → aiohttp's
        sock = aiohttp_response.connection.transport.get_extra_info("socket")
        queued = array.array("i", [0])
        fcntl.ioctl(sock.fileno(), termios.FIONREAD, queued)  # bytes received, not yet read by the process
        return queued[0] + aiohttp_response.content.total_bytes  # kernel queue + what aiohttp read ahead

    async def calls(client):
        holding, bodies = [], []
        for _round in range(2):
            waiting = [await client.send(client.build_request("GET", _url(server, "/answer")), stream=True)
                       for _ in range(20)]
            await asyncio.sleep(0.5)  # time for the server to push whatever the connections accept
            holding += [held(response) for response in waiting]
            for response in waiting:
                bodies.append(await response.aread())
                await response.aclose()
        return holding, bodies

    holding, bodies = _run(calls, timeout=5)

    assert max(holding) <= 512 * 1024, holding  # 3 MB each with the defaults; ~0.2 MB here
    assert bodies == [ANSWER] * 40
    assert len(server.connections) == 40  # a connection that carried a large body is not reused
