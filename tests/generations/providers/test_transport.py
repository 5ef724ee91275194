"""The upstream transport spreads calls over several small connection pools and still allows `max_connections`
calls at once."""

import asyncio
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from generations.providers.transport import POOL_SIZE, PooledTransport

CALLS = POOL_SIZE * 2 + 6  # three pools


class _AllAtOnce(BaseHTTPRequestHandler):
    """Answers only once CALLS requests are open together; a request that never gets there waits in vain."""

    protocol_version = "HTTP/1.1"
    barrier = threading.Barrier(CALLS, timeout=10)

    def do_GET(self) -> None:
        try:
            self.barrier.wait()
            status = 200
        except threading.BrokenBarrierError:
            status = 503
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _AllAtOnce)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_max_connections_calls_are_open_at_once_across_the_pools(server: str) -> None:
    transport = PooledTransport(max_connections=CALLS)

    async def main() -> tuple[list[int], list[int]]:
        async with httpx.AsyncClient(transport=transport, timeout=30) as client:
            responses = await asyncio.gather(*(client.get(f"{server}/{i}") for i in range(CALLS)))
            return [r.status_code for r in responses], list(transport._busy)

    statuses, busy_after = asyncio.run(main())

    assert statuses == [200] * CALLS
    assert len(transport._pools) == 3
    assert busy_after == [0, 0, 0]  # every body was read and closed: no pool counts a call still open
