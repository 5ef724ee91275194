"""A local stand-in for AIHubMix: the three request families, the tasks endpoint and the image files, with the
same wire shapes as the real service, plus faults injected by markers in the prompt (see README "AIHubMix
sandbox"). A threaded stdlib server: every request gets its own thread, so hundreds of slow calls overlap.
"""

import base64
import email.parser
import email.policy
import json
import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from generations.sandbox.render import decompression_bomb, format_for, image_render, size_parse

ASYNC_MODELS = frozenset({"flux-kontext-max", "flux-kontext-pro", "flux-2-flex", "flux-2-pro"})
_FAULT = re.compile(r"\[fault:([a-z0-9-]+)\]")
_COUNTED = re.compile(r"^(.+?)(?:x(\d+)|-(once|twice|thrice))$")
_TIMES = {"once": 1, "twice": 2, "thrice": 3}
HANG_SECONDS = 600
OVERSIZED_BYTES = 1024 * 1024 * 1024


def fault_parse(prompt: str) -> tuple[str | None, int | None]:
    """`[fault:500]` → ("500", None): always. `[fault:500x2]` / `[fault:500-twice]` → ("500", 2): the first two
    calls with this exact prompt fail, later ones succeed."""
    match = _FAULT.search(prompt or "")
    if not match:
        return None, None
    marker = match.group(1)
    counted = _COUNTED.match(marker)
    if counted and (counted.group(2) or counted.group(3)):
        times = int(counted.group(2)) if counted.group(2) else _TIMES[counted.group(3)]
        return counted.group(1), times
    return marker, None


@dataclass
class _Task:
    prompt: str
    model: str
    width: int
    height: int
    image_format: str
    ready_at: float
    fault: str | None


@dataclass
class SandboxState:
    latency: float
    api_key: str | None
    calls: Counter = field(default_factory=Counter)
    prompt_calls: Counter = field(default_factory=Counter)
    tasks: dict[str, _Task] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)

    def count(self, *keys: str) -> None:
        with self.lock:
            for key in keys:
                self.calls[key] += 1

    def active_fault(self, prompt: str) -> str | None:
        kind, times = fault_parse(prompt)
        with self.lock:
            self.prompt_calls[prompt] += 1
            seen = self.prompt_calls[prompt]
        if kind is None or (times is not None and seen > times):
            return None
        return kind

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()
            self.prompt_calls.clear()
            self.tasks.clear()


class _Disconnect(Exception):
    pass


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

    # --- plumbing ---------------------------------------------------------------------------------------

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Request-Id", f"sbx-{uuid.uuid4().hex[:16]}")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json", headers)

    def _error(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        body = {"error": {"message": message, "type": "sandbox_error", "param": None, "code": code}}
        self._json(status, body, headers)

    def _authorized(self) -> bool:
        token = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if token and (self.state.api_key is None or token == self.state.api_key):
            return True
        self.state.count("unauthorized")
        self._error(401, "invalid_api_key", "Invalid or missing bearer token")
        return False

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _public_base(self) -> str:
        return f"http://{self.headers.get('Host') or self.server.authority}"

    def _dispatch(self, handler: Any, *args: Any) -> None:
        try:
            handler(*args)
        except _Disconnect:
            self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path.startswith("/files/"):
            self._dispatch(self._file, path.removeprefix("/files/"))
        elif path.startswith("/v1/tasks/"):
            if self._authorized():
                self._dispatch(self._task_poll, path.removeprefix("/v1/tasks/"))
        else:
            self._error(404, "not_found", f"no route for GET {path}")

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        body = self._body()
        if not self._authorized():
            return
        if path == "/v1/images/generations":
            self._dispatch(self._openai_generate, body)
        elif path == "/v1/images/edits":
            self._dispatch(self._openai_edit, body)
        elif path.startswith("/v1/models/") and path.endswith("/predictions"):
            self._dispatch(
                self._predictions, path.removeprefix("/v1/models/").removesuffix("/predictions"), body
            )
        else:
            self._error(404, "not_found", f"no route for POST {path}")

    # --- faults shared by every generation endpoint -------------------------------------------------------

    def _apply_fault(self, fault: str | None, *, is_async: bool = False) -> bool:
        """Answer the fault if it is one that replaces the answer; True when the request is handled."""
        if fault is None:
            return False
        self.state.count(f"fault:{fault}")
        if fault == "hang":
            self.state.stopping.wait(HANG_SECONDS)
            raise _Disconnect
        if fault == "disconnect":
            raise _Disconnect
        if fault == "malformed":
            self._send(200, b'{"data": [{"url": "http://', "application/json")
            return True
        statuses = {
            "400": (400, "invalid_request", "The request was rejected"),
            "401": (401, "invalid_api_key", "Invalid API key"),
            "403": (403, "insufficient_user_quota", "Insufficient account balance"),
            "429": (429, "rate_limit_exceeded", "Rate limit reached for this model"),
            "500": (500, "internal_error", "Upstream internal error"),
            "503": (503, "no_available_channel", "No available channel for this model"),
        }
        if fault in statuses:
            status, code, message = statuses[fault]
            self._error(status, code, message, {"Retry-After": "1"} if status == 429 else None)
            return True
        if fault == "moderated" and not is_async:
            self._error(400, "moderation_blocked", "Your request was rejected by the safety system")
            return True
        return False

    def _latency(self) -> None:
        if self.state.latency > 0:
            self.state.stopping.wait(self.state.latency)

    # --- images ---------------------------------------------------------------------------------------

    def _output_url(
        self, *, prompt: str, model: str, width: int, height: int, index: int, ext: str, fault: str | None
    ) -> str:
        token = {"p": prompt[:300], "m": model, "w": width, "h": height, "i": index, "f": fault}
        encoded = base64.urlsafe_b64encode(json.dumps(token).encode()).decode().rstrip("=")
        return f"{self._public_base()}/files/{encoded}.{ext}"

    def _outputs(
        self,
        *,
        prompt: str,
        model: str,
        size: Any,
        n: int,
        response_format: str,
        output_format: Any,
        fault: str | None,
    ) -> list[dict[str, str]]:
        width, height = size_parse(size)
        pillow_format, _content_type, ext = format_for(output_format)
        items = []
        for index in range(n):
            if response_format == "b64_json" and fault not in ("oversized", "bomb"):
                data = (
                    b"<html>not an image</html>"
                    if fault == "not-image"
                    else image_render(
                        prompt=prompt,
                        model=model,
                        width=width,
                        height=height,
                        index=index,
                        image_format=pillow_format,
                    )
                )
                items.append({"b64_json": base64.b64encode(data).decode()})
            else:
                url = self._output_url(
                    prompt=prompt, model=model, width=width, height=height, index=index, ext=ext, fault=fault
                )
                items.append({"url": url})
        return items

    def _file(self, name: str) -> None:
        self.state.count("files")
        token, _, ext = name.rpartition(".")
        try:
            spec = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        except ValueError:
            self._error(404, "not_found", "no such file")
            return
        fault = spec.get("f")
        if fault == "not-image":
            self._send(200, b"<html><body>This is not an image</body></html>", "text/html")
        elif fault == "bomb":
            self._send(200, decompression_bomb(), "image/png")
        elif fault == "oversized":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            chunk = b"\x89PNG" + b"\0" * (64 * 1024 - 4)
            for _ in range(OVERSIZED_BYTES // len(chunk)):
                self.wfile.write(chunk)
        else:
            pillow_format, content_type, _ = format_for(ext)
            data = image_render(
                prompt=spec["p"],
                model=spec["m"],
                width=spec["w"],
                height=spec["h"],
                index=spec["i"],
                image_format=pillow_format,
            )
            self._send(200, data, content_type, {"Cache-Control": "max-age=86400"})

    # --- OpenAI-compatible family -------------------------------------------------------------------------

    def _openai_answer(self, fields: dict[str, Any], endpoint: str) -> None:
        model = str(fields.get("model") or "")
        prompt = str(fields.get("prompt") or "")
        self.state.count(endpoint, "family:openai_compat", f"model:{model}")
        if not prompt:
            self._error(400, "prompt_missing", "prompt is required")
            return
        fault = self.state.active_fault(prompt)
        if self._apply_fault(fault):
            return
        self._latency()
        is_gpt_image = model.startswith("gpt-image")
        response_format = "b64_json" if is_gpt_image else str(fields.get("response_format") or "url")
        outputs = self._outputs(
            prompt=prompt,
            model=model,
            size=fields.get("size"),
            n=int(fields.get("n") or 1),
            response_format=response_format,
            output_format=fields.get("output_format"),
            fault=fault,
        )
        payload: dict[str, Any] = {"created": int(time.time()), "data": outputs}
        if is_gpt_image:
            tokens = max(1, len(prompt) // 4)
            payload["usage"] = {
                "input_tokens": tokens,
                "output_tokens": 4160,
                "total_tokens": tokens + 4160,
                "input_tokens_details": {"text_tokens": tokens, "image_tokens": 0},
            }
        self._json(200, payload)

    def _openai_generate(self, body: bytes) -> None:
        try:
            fields = json.loads(body or b"{}")
        except ValueError:
            self._error(400, "invalid_json", "the body is not JSON")
            return
        self._openai_answer(fields, "images.generations")

    def _openai_edit(self, body: bytes) -> None:
        header = f"Content-Type: {self.headers.get('Content-Type', '')}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(header + body)
        fields: dict[str, Any] = {}
        images = 0
        for part in message.iter_parts() if message.is_multipart() else []:
            name = part.get_param("name", header="content-disposition")
            if part.get_filename() is not None:
                images += name in ("image", "image[]")
            elif name:
                fields[name] = (
                    part.get_content().strip()
                    if part.get_content_maintype() == "text"
                    else part.get_payload()
                )
        if not images:
            self.state.count("images.edits")
            self._error(400, "image_missing", "at least one image file is required")
            return
        self._openai_answer(fields, "images.edits")

    # --- predictions and async tasks -----------------------------------------------------------------------

    def _predictions(self, model_path: str, body: bytes) -> None:
        vendor, _, model = model_path.partition("/")
        try:
            fields = json.loads(body or b"{}").get("input") or {}
        except (ValueError, AttributeError):
            self._error(400, "invalid_json", "the body must be a JSON object with `input`")
            return
        is_async = model in ASYNC_MODELS
        family = "async_task" if is_async else "predictions"
        self.state.count("predictions", f"family:{family}", f"model:{model_path}")
        prompt = str(fields.get("prompt") or "")
        if not prompt:
            self._error(400, "prompt_missing", "prompt is required")
            return
        fault = self.state.active_fault(prompt)
        if self._apply_fault(fault, is_async=is_async):
            return
        size = fields.get("size") or fields.get("aspectRatio") or fields.get("aspect_ratio")
        if is_async:
            self._task_submit(model_path, prompt, size, fields.get("output_format"), fault)
            return
        self._latency()
        if vendor == "google":
            n = int(fields.get("numberOfImages") or fields.get("sampleCount") or 4)
        elif vendor == "doubao":
            auto = fields.get("sequential_image_generation") == "auto"
            n = (
                int((fields.get("sequential_image_generation_options") or {}).get("max_images", 15))
                if auto
                else 1
            )
        else:
            n = int(fields.get("n") or fields.get("num_images") or 1)
        response_format = str(fields.get("response_format") or "url")
        if model == "FLUX-1.1-pro":
            # Synchronous BFL models answer OpenAI-style with base64 (NOTES.md).
            outputs = self._outputs(
                prompt=prompt,
                model=model,
                size=size,
                n=1,
                response_format="b64_json",
                output_format=fields.get("output_format") or "jpeg",
                fault=fault,
            )
            self._json(200, {"created": int(time.time()), "data": outputs})
            return
        outputs = self._outputs(
            prompt=prompt,
            model=model,
            size=size,
            n=n,
            response_format=response_format,
            output_format=fields.get("output_format"),
            fault=fault,
        )
        self._json(200, {"output": outputs})

    def _task_submit(
        self, model_path: str, prompt: str, size: Any, output_format: Any, fault: str | None
    ) -> None:
        self.state.count("tasks.submit")
        width, height = size_parse(size)
        task_id = f"api.sbx.{uuid.uuid4().hex}"
        task = _Task(
            prompt=prompt,
            model=model_path,
            width=width,
            height=height,
            image_format=str(output_format or "jpeg"),
            ready_at=time.monotonic() + self.state.latency,
            fault=fault,
        )
        with self.state.lock:
            self.state.tasks[task_id] = task
        self._json(
            200, {"output": [{"taskId": task_id, "polling_url": f"{self._public_base()}/v1/tasks/{task_id}"}]}
        )

    def _task_poll(self, task_id: str) -> None:
        self.state.count("tasks.poll")
        with self.state.lock:
            task = self.state.tasks.get(task_id)
        if task is None or task.fault == "task-not-found":
            self._json(200, {"id": task_id, "status": "Task not found"})
            return
        if time.monotonic() < task.ready_at:
            self._json(200, {"id": task_id, "status": "Pending", "progress": None})
            return
        if task.fault == "moderated":
            self._json(
                200,
                {
                    "id": task_id,
                    "status": "Content Moderated",
                    "details": {"Moderation Reasons": ["sandbox"]},
                },
            )
            return
        if task.fault == "task-error":
            self._json(200, {"id": task_id, "status": "Error", "details": "sandbox task error"})
            return
        _, _, ext = format_for(task.image_format)
        url = self._output_url(
            prompt=task.prompt,
            model=task.model,
            width=task.width,
            height=task.height,
            index=0,
            ext=ext,
            fault=task.fault,
        )
        self._json(200, {"id": task_id, "status": "Ready", "result": {"sample": url, "prompt": task.prompt}})


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], state: SandboxState, *, verbose: bool = False) -> None:
        super().__init__(address, SandboxHandler)
        self.state = state
        self.verbose = verbose

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
    def latency(self) -> float:
        return self.server.state.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self.server.state.latency = seconds

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
