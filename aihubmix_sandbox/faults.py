"""Faults injected by a marker in the prompt (`[fault:429]`, `[fault:500x2]`, see README "AIHubMix sandbox"):
parsing the marker, counting the calls a counted fault still applies to, and what each fault does at the three
moments it can strike — the generation request, the image file fetch, the task poll."""

import re
import threading
from collections import Counter
from typing import TYPE_CHECKING, Any

from aihubmix_sandbox.render import decompression_bomb

if TYPE_CHECKING:
    from aihubmix_sandbox.server import SandboxHandler

_FAULT = re.compile(r"\[fault:([a-z0-9-]+)\]")
_COUNTED = re.compile(r"^(.+?)(?:x(\d+)|-(once|twice|thrice))$")
_TIMES = {"once": 1, "twice": 2, "thrice": 3}
HANG_SECONDS = 600
OVERSIZED_BYTES = 1024 * 1024 * 1024
# Faults that only a fetched file can show: the family answers with a URL even when base64 was asked for.
FILE_FAULTS = frozenset({"oversized", "bomb"})
_STATUSES = {
    "400": (400, "invalid_request", "The request was rejected"),
    "401": (401, "invalid_api_key", "Invalid API key"),
    "403": (403, "insufficient_user_quota", "Insufficient account balance"),
    "429": (429, "rate_limit_exceeded", "Rate limit reached for this model"),
    "500": (500, "internal_error", "Upstream internal error"),
    "503": (503, "no_available_channel", "No available channel for this model"),
}


class Disconnect(Exception):
    """Drop the connection without answering."""


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


class FaultCounter:
    """Calls seen per exact prompt, so that a counted fault stops once it has struck its number of times."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: Counter = Counter()

    def active(self, prompt: str) -> str | None:
        kind, times = fault_parse(prompt)
        with self._lock:
            self._seen[prompt] += 1
            seen = self._seen[prompt]
        if kind is None or (times is not None and seen > times):
            return None
        return kind

    def seen(self) -> dict[str, int]:
        """Generation requests received per exact prompt (tests check each prompt was sent upstream once)."""
        with self._lock:
            return dict(self._seen)

    def reset(self) -> None:
        with self._lock:
            self._seen.clear()


def fault_answer(http: "SandboxHandler", fault: str | None, *, is_async: bool = False) -> bool:
    """Answer the fault if it is one that replaces the generation answer; True when the request is handled.
    An async task is moderated when polled, not when submitted."""
    if fault is None:
        return False
    http.state.count(f"fault:{fault}")
    if fault == "hang":
        http.state.stopping.wait(HANG_SECONDS)
        raise Disconnect
    if fault == "disconnect":
        raise Disconnect
    if fault == "malformed":
        http.reply(200, b'{"data": [{"url": "http://', "application/json")
        return True
    if fault in _STATUSES:
        status, code, message = _STATUSES[fault]
        http.reply_error(status, code, message, {"Retry-After": "1"} if status == 429 else None)
        return True
    if fault == "moderated" and not is_async:
        http.reply_error(400, "moderation_blocked", "Your request was rejected by the safety system")
        return True
    return False


def fault_inline_image(fault: str | None) -> bytes | None:
    """What a base64 answer carries instead of an image under `not-image`; None for a real image."""
    return b"<html>not an image</html>" if fault == "not-image" else None


def fault_file_answer(http: "SandboxHandler", fault: str | None) -> bool:
    """Serve the image file the fault replaces; True when the request is handled."""
    if fault == "not-image":
        http.reply(200, b"<html><body>This is not an image</body></html>", "text/html")
        return True
    if fault == "bomb":
        http.reply(200, decompression_bomb(), "image/png")
        return True
    if fault == "oversized":
        # No Content-Length and a gigabyte of body: only a client that caps what it reads gets out early.
        http.send_response(200)
        http.send_header("Content-Type", "image/png")
        http.send_header("Connection", "close")
        http.end_headers()
        http.close_connection = True
        chunk = b"\x89PNG" + b"\0" * (64 * 1024 - 4)
        for _ in range(OVERSIZED_BYTES // len(chunk)):
            http.wfile.write(chunk)
        return True
    return False


def fault_task_answer(task_id: str, fault: str | None, *, ready: bool) -> dict[str, Any] | None:
    """The poll answer a fault replaces (`task-not-found` at once; `moderated`, `task-error` once the task would
    be ready); None when the task answers normally."""
    if fault == "task-not-found":
        return {"id": task_id, "status": "Task not found"}
    if not ready:
        return None
    if fault == "moderated":
        return {"id": task_id, "status": "Content Moderated", "details": {"Moderation Reasons": ["sandbox"]}}
    if fault == "task-error":
        return {"id": task_id, "status": "Error", "details": "sandbox task error"}
    return None
