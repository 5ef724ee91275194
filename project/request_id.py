"""One id per request: in the `X-Request-Id` response header, in every log line, and in error bodies.

A caller's own `X-Request-Id` is echoed when it is sane (bounded length, a safe charset), so a request can be
followed from the client's logs into ours; anything else is replaced by a fresh UUID. django-structlog generates its
own id before the view runs; `request_id_bind` (connected to its signal) rebinds ours so the logs say the same.
"""

import contextlib
import re
import uuid
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

import structlog
from django.http import HttpRequest, HttpResponse
from django_structlog import signals as django_structlog_signals

from project.hybrid_middleware import HybridMiddleware

HEADER = "X-Request-Id"
# Letters, digits and a few separators: safe in a header, a log line and a JSON string without escaping.
_SANE = re.compile(r"^[A-Za-z0-9._:@/+=-]{8,128}$")

_current: ContextVar[str | None] = ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    return _current.get()


def request_id_choose(incoming: str | None) -> str:
    if incoming and _SANE.match(incoming):
        return incoming
    return str(uuid.uuid4())


class RequestIdMiddleware(HybridMiddleware):
    """Outermost middleware: every response leaving the application, errors included, carries the id.

    Both sync and async (no thread hop)."""

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        super().__init__(get_response)
        django_structlog_signals.bind_extra_request_metadata.connect(request_id_bind, dispatch_uid=__name__)

    def _call(self, request: HttpRequest) -> HttpResponse:
        with _request_id_scope(request) as request_id:
            response = self.get_response(request)
        response[HEADER] = request_id
        return response

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        with _request_id_scope(request) as request_id:
            response = await self.get_response(request)
        response[HEADER] = request_id
        return response


@contextlib.contextmanager
def _request_id_scope(request: HttpRequest) -> Iterator[str]:
    request_id = request_id_choose(request.META.get("HTTP_X_REQUEST_ID"))
    request.request_id = request_id  # type: ignore[attr-defined]
    token = _current.set(request_id)
    try:
        yield request_id
    finally:
        _current.reset(token)


def request_id_bind(sender: Any, request: HttpRequest, **_: Any) -> None:
    """django-structlog's `bind_extra_request_metadata`: log under our id, not the one it generated, and the peer
    address the audit trail records (REMOTE_ADDR; django-structlog's own lookup, python-ipware, is off: it cost
    ~5 % of a submit's CPU and believed client-supplied forwarding headers)."""
    request_id = getattr(request, "request_id", None)
    if request_id:
        structlog.contextvars.bind_contextvars(request_id=request_id, ip=request.META.get("REMOTE_ADDR"))
