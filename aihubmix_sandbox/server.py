"""The sandbox's HTTP side: routing, replies, key checks (Bearer, or x-goog-api-key on the Gemini route), the
shared state (call counters, tasks, latency) and the server with its start/stop handle. What each route answers
lives in `families/`, `outputs` and `faults`. A threaded stdlib server: every request gets its own thread, so
hundreds of slow calls overlap.
"""

import json
import socket
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from aihubmix_sandbox.families.gemini import GEMINI_PREFIX, GEMINI_SUFFIX, generate_content
from aihubmix_sandbox.families.model_list import model_list
from aihubmix_sandbox.families.openai_compat import images_edit, images_generate
from aihubmix_sandbox.families.predictions import predictions
from aihubmix_sandbox.families.tasks import Task, task_poll
from aihubmix_sandbox.faults import Disconnect, FaultCounter
from aihubmix_sandbox.multipart import multipart_parse
from aihubmix_sandbox.outputs import file_serve
from aihubmix_sandbox.render import json_bytes


@dataclass(frozen=True)
class RecordedRequest:
    """What the sandbox received, so tests can assert on the exact wire request (file downloads excluded)."""

    method: str
    path: str
    json: Any = None
    form: dict[str, Any] | None = None
    files: tuple[str, ...] = ()  # multipart file field names, in order
    content_type: str = ""
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased names


@dataclass
class SandboxState:
    latency: float
    api_key: str | None
    calls: Counter = field(default_factory=Counter)
    requests: list[RecordedRequest] = field(default_factory=list)
    in_flight: int = 0  # POSTs being served right now (benches sample it from another process)
    posts: int = 0  # POSTs received since the start (a bench tells when the last of its calls went out)
    faults: FaultCounter = field(default_factory=FaultCounter)
    tasks: dict[str, Task] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    # How the public model list differs from the models the sandbox speaks (families/model_list.py).
    model_list_hidden: set[str] = field(default_factory=set)
    model_list_added: list[dict[str, Any]] = field(default_factory=list)

    def count(self, *keys: str) -> None:
        with self.lock:
            for key in keys:
                self.calls[key] += 1

    def latency_wait(self) -> None:
        """What every generation takes; cut short when the server stops."""
        if self.latency > 0:
            self.stopping.wait(self.latency)

    def task_add(self, task_id: str, task: Task) -> None:
        with self.lock:
            self.tasks[task_id] = task

    def task_get(self, task_id: str) -> Task | None:
        with self.lock:
            return self.tasks.get(task_id)

    def record(self, request: RecordedRequest) -> None:
        with self.lock:
            self.requests.append(request)

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.calls.clear()
            self.tasks.clear()
            self.model_list_hidden.clear()
            self.model_list_added.clear()
        self.faults.reset()


class SandboxHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, each answer waits for a delayed ACK.
    disable_nagle_algorithm = True
    server: "SandboxServer"

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    @property
    def state(self) -> SandboxState:
        return self.server.state

    # Named reply* because BaseHTTPRequestHandler's own send_error is used by its request parsing.
    def reply(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Request-Id", f"sbx-{uuid.uuid4().hex[:16]}")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def reply_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self.reply(status, json_bytes(payload), "application/json", headers)

    def reply_error(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        body = {"error": {"message": message, "type": "sandbox_error", "param": None, "code": code}}
        self.reply_json(status, body, headers)

    def public_base(self) -> str:
        """Where clients reach this server, for the URLs it hands out."""
        return f"http://{self.headers.get('Host') or self.server.authority}"

    def _authorized(self, *, gemini: bool = False) -> bool:
        """A Bearer token; on the Gemini route Google's `x-goog-api-key` header instead (a Bearer token there is
        refused, as Google refuses it)."""
        if gemini:
            token = self.headers.get("x-goog-api-key", "").strip()
        else:
            token = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if token and (self.state.api_key is None or token == self.state.api_key):
            return True
        self.state.count("unauthorized")
        missing = "x-goog-api-key header" if gemini else "bearer token"
        self.reply_error(401, "invalid_api_key", f"Invalid or missing {missing}")
        return False

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self, handler: Any, *args: Any) -> None:
        try:
            handler(self, *args)
        except (Disconnect, BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _record(self, method: str, path: str, body: bytes = b"") -> None:
        content_type = self.headers.get("Content-Type", "")
        headers = {name.lower(): value for name, value in self.headers.items()}
        if content_type.startswith("multipart/"):
            form, files = multipart_parse(content_type, body)
            self.state.record(
                RecordedRequest(
                    method, path, form=form, files=tuple(files), content_type=content_type, headers=headers
                )
            )
            return
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            payload = None
        self.state.record(RecordedRequest(method, path, json=payload, content_type=content_type, headers=headers))

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        path = url.path
        if path == "/_sandbox/stats":
            with self.state.lock:
                stats = {"in_flight": self.state.in_flight, "posts": self.state.posts, "calls": dict(self.state.calls)}
            if "prompts=1" in url.query.split("&"):  # another process's view of `handle.state.faults.seen()`
                stats["prompts"] = self.state.faults.seen()
            self.reply_json(200, stats)
            return
        if not path.startswith("/files/"):
            self._record("GET", path)
        if path == "/api/v1/models":  # public: no key, as on aihubmix.com
            self._dispatch(model_list, url.query)
        elif path.startswith("/files/"):
            self._dispatch(file_serve, path.removeprefix("/files/"))
        elif path.startswith("/v1/tasks/"):
            if self._authorized():
                self._dispatch(task_poll, path.removeprefix("/v1/tasks/"))
        else:
            self.reply_error(404, "not_found", f"no route for GET {path}")

    def do_POST(self) -> None:
        with self.state.lock:
            self.state.in_flight += 1
            self.state.posts += 1
        try:
            self._post()
        finally:
            with self.state.lock:
                self.state.in_flight -= 1

    def _post(self) -> None:
        path = urlsplit(self.path).path
        body = self._body()
        self._record("POST", path, body)
        if path.startswith(GEMINI_PREFIX) and path.endswith(GEMINI_SUFFIX):
            if self._authorized(gemini=True):
                self._dispatch(generate_content, path.removeprefix(GEMINI_PREFIX).removesuffix(GEMINI_SUFFIX), body)
            return
        if not self._authorized():
            return
        if path == "/v1/images/generations":
            self._dispatch(images_generate, body)
        elif path == "/v1/images/edits":
            self._dispatch(images_edit, body)
        elif path.startswith("/v1/models/") and path.endswith("/predictions"):
            self._dispatch(predictions, path.removeprefix("/v1/models/").removesuffix("/predictions"), body)
        else:
            self.reply_error(404, "not_found", f"no route for POST {path}")


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], state: SandboxState, *, verbose: bool = False) -> None:
        super().__init__(address, SandboxHandler)
        self.state = state
        self.verbose = verbose

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        # The real upstream is another host: an answer its client has not read yet waits in that host's memory,
        # not in ours. On loopback, the kernel's send buffers (autotuned up to tcp_wmem's 4 MB) are this machine's
        # TCP memory: 2,000 unread 3 MB answers pushed it past tcp_mem, where the kernel drops segments and the
        # retransmissions back off for minutes. A small send buffer keeps unsent answers in this process instead.
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 128 * 1024)
        return connection, address

    @property
    def authority(self) -> str:
        host, port = self.server_address[:2]
        return f"{host}:{port}"


@dataclass
class SandboxHandle:
    server: SandboxServer
    thread: threading.Thread
    base_url: str
    tasks_url: str

    @property
    def state(self) -> SandboxState:
        return self.server.state

    @property
    def calls(self) -> Counter:
        return self.server.state.calls

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received since the last reset (image file downloads excluded), oldest first."""
        with self.server.state.lock:
            return list(self.server.state.requests)

    @property
    def latency(self) -> float:
        return self.server.state.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self.server.state.latency = seconds

    def model_list_hide(self, model_id: str) -> None:
        """Leave a model the sandbox speaks out of its public model list (until reset)."""
        with self.server.state.lock:
            self.server.state.model_list_hidden.add(model_id)

    def model_list_add(self, model_id: str, model_name: str = "", pricing: dict[str, Any] | None = None) -> None:
        """List an image model the sandbox does not speak (until reset)."""
        with self.server.state.lock:
            self.server.state.model_list_added.append(
                {"model_id": model_id, "model_name": model_name, "pricing": pricing or {}}
            )

    def reset(self) -> None:
        self.server.state.reset()

    def stop(self) -> None:
        self.server.state.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def sandbox_server_create(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    latency: float = 0.0,
    api_key: str | None = None,
    verbose: bool = False,
) -> SandboxServer:
    return SandboxServer((host, port), SandboxState(latency=latency, api_key=api_key), verbose=verbose)


def start_sandbox(
    host: str = "127.0.0.1", port: int = 0, latency: float = 0.0, api_key: str | None = None
) -> SandboxHandle:
    """Serve on a background thread (port 0: an ephemeral port) and return a handle to it."""
    server = sandbox_server_create(host=host, port=port, latency=latency, api_key=api_key)
    thread = threading.Thread(target=server.serve_forever, name="aihubmix-sandbox", daemon=True)
    thread.start()
    root = f"http://{server.authority}/v1"
    return SandboxHandle(server=server, thread=thread, base_url=root, tasks_url=f"{root}/tasks")
