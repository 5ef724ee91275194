"""Waiting for a generation without holding a thread (`Prefer: wait=N`, the OpenAI-compatible endpoints).

The DRF views stay synchronous: they validate, submit and take a wait slot like any view, then return a
`WaitResponse` naming the generation, the wait and a `finish` callable. `waiting_view` wraps the DRF view in an
async Django view: under ASGI it runs the sync part in the request's thread, hands that thread's database connection
back, waits on the event loop for the generation's "finished" notification, then runs `finish` to build the answer.
While it waits the request holds no thread and no database connection; the few re-reads it makes (on a
notification, and every NOTIFY_RECHECK_SECONDS as a safety net) run on a small shared pool.
"""

import asyncio
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial, wraps
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponseBase
from django.views.decorators.csrf import csrf_exempt
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from generations.api.streams import PendingStream, stream_http_response
from generations.notifications import wait_for_generation
from generations.selectors import generation_is_final
from generations.services.waits import WaitSlot, wait_slot_release

T = TypeVar("T")

READ_THREADS = 4
_READS = ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="wait-reads")


@dataclass(frozen=True)
class PendingWait:
    generation_id: int
    timeout_seconds: float
    slot: WaitSlot
    finish: Callable[[], HttpResponseBase]  # sync; builds the final, finalized response after the wait


class WaitResponse(Response):
    """Returned by a DRF view to have `waiting_view` wait for the generation and then answer `finish()`."""

    def __init__(self, pending: PendingWait) -> None:
        super().__init__(status=202)
        self.pending_wait = pending


def pending_wait(
    view: APIView,
    request: Request,
    *,
    generation_id: int,
    timeout_seconds: float,
    slot: WaitSlot,
    answer: Callable[[], Response],
) -> WaitResponse:
    """What a DRF handler returns to wait for the generation and then answer `answer()`; an error `answer()`
    raises is answered the way the view answers errors."""

    def finish() -> HttpResponseBase:
        try:
            response = answer()
        except Exception as exc:
            response = view.handle_exception(exc)
        return view.finalize_response(request, response)

    return WaitResponse(PendingWait(generation_id=generation_id, timeout_seconds=timeout_seconds, slot=slot,
                                    finish=finish))


def _read(function: Callable[..., T], **kwargs: Any) -> T:
    """Runs on the shared read pool. Its connection is closed after each read: with the web tier's pool
    (DATABASE_POOL) that hands it back, so waiting requests hold none between re-reads."""
    try:
        return function(**kwargs)
    finally:
        connections.close_all()


async def _shared_read(function: Callable[..., T], **kwargs: Any) -> T:
    return await sync_to_async(partial(_read, function, **kwargs), thread_sensitive=False, executor=_READS)()


def _release_request_connections() -> None:
    """The request's thread keeps its connection until the request ends; give it back before a long wait
    (unless a test wraps everything in one transaction)."""
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close()


def _view_then_release(view: Callable[..., HttpResponseBase], request: HttpRequest, *args: Any,
                       **kwargs: Any) -> HttpResponseBase:
    """The DRF view; when it leaves a wait or a stream pending, its connection goes back to the pool here, in the
    request's own thread, before the event loop takes over (nothing else of the request will use it)."""
    response = view(request, *args, **kwargs)
    if getattr(response, "pending_stream", None) is not None or getattr(response, "pending_wait", None) is not None:
        _release_request_connections()
    return response


# Per event loop: how many waiting views may run their sync part (and hold a pooled connection) at once.
_gates: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]" = weakref.WeakKeyDictionary()


def _sync_part_gate() -> asyncio.Semaphore | None:
    """Why: a burst of stream opens or waits of one tenant (50 at once) all take that tenant's wait-slot lock
    (services/waits.py), one after the other, each holding a pooled connection while it waits for the lock. With
    more of them than the pool has connections, the rest waited for one past DATABASE_POOL_TIMEOUT and were
    answered 503 (a pool with no connection to give counts as an outage: project/db_outage.py). So at most half
    of what the shared read pool leaves of the connection pool runs these sync parts at once; the others wait on the
    event loop, holding neither a thread nor a connection, and the rest stays free for every other request.
    Without DATABASE_POOL (persistent per-thread connections, SQLite) there is no pool to protect."""
    pool = settings.DATABASES["default"].get("OPTIONS", {}).get("pool")
    if not pool:
        return None
    loop = asyncio.get_running_loop()
    gate = _gates.get(loop)
    if gate is None:
        max_size = pool.get("max_size", 4) if isinstance(pool, dict) else 4
        gate = _gates[loop] = asyncio.Semaphore(max(1, (max_size - READ_THREADS) // 2))
    return gate


def waiting_view(view: Callable[..., HttpResponseBase], *, always_waits: bool = False) -> Callable[..., Any]:
    """Wrap a DRF `as_view()` callable whose handlers may return a `WaitResponse` or a `StreamResponse`
    (generations/api/streams.py). `always_waits`: every request takes a wait slot (streams, /v1/images/*); else
    only those with `Prefer: wait` do, and only those pass the gate (a plain submit or list is not held back)."""

    @wraps(view)
    async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        takes_slot = always_waits or "wait" in request.headers.get("Prefer", "")
        gate = _sync_part_gate() if takes_slot else None
        if gate is None:
            response = await sync_to_async(_view_then_release)(view, request, *args, **kwargs)
        else:
            async with gate:
                response = await sync_to_async(_view_then_release)(view, request, *args, **kwargs)
        stream: PendingStream | None = getattr(response, "pending_stream", None)
        if stream is not None:
            return stream_http_response(
                response, stream, read=_shared_read,
                release_connections=sync_to_async(_release_request_connections),
                release_slot=partial(_shared_read, wait_slot_release, slot=stream.slot),
            )
        pending: PendingWait | None = getattr(response, "pending_wait", None)
        if pending is None:
            return response
        try:
            await sync_to_async(_release_request_connections)()
            await wait_for_generation(
                generation_id=pending.generation_id,
                is_final=partial(_shared_read, generation_is_final, generation_id=pending.generation_id),
                timeout_seconds=pending.timeout_seconds,
            )
        finally:
            # shielded: a client that hangs up cancels the wait, and its slot must still be given back
            await asyncio.shield(_shared_read(wait_slot_release, slot=pending.slot))
        return await sync_to_async(pending.finish)()

    return csrf_exempt(wrapper)
