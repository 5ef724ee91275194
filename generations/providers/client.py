"""The one HTTP layer every request family goes through: auth, timeouts, pooling, connection retries, error
classification and the polling of async tasks."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from types import ModuleType, TracebackType
from typing import Self

import httpx

from generations.providers import async_task, gemini, openai_compat, predictions
from generations.providers.base import (
    MalformedResponse,
    PermanentProviderError,
    ProviderCall,
    ProviderError,
    ProviderResult,
    TransientProviderError,
    UnknownOutcomeError,
    UpstreamRequest,
    error_from_response,
    retry_after_seconds,
)
from generations.providers.budget import AnswerHold
from generations.providers.transport import AiohttpTransport

logger = logging.getLogger(__name__)

# What an answer without a Content-Length is taken to weigh against the answer budget: a gpt-image-2 image.
UNKNOWN_ANSWER_BYTES = 4 * 1024 * 1024

FAMILIES: dict[str, ModuleType] = {
    "openai_compat": openai_compat,
    "predictions": predictions,
    "async_task": async_task,
    "gemini": gemini,
}


class AIHubMixClient:
    """Use as `async with AIHubMixClient(...) as client: await client.run(call)`; one instance serves many
    concurrent calls over one connection pool."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        tasks_url: str,
        gemini_base_url: str = "",
        connect_timeout_seconds: float = 10.0,
        read_timeout_seconds: float = 180.0,
        model_read_timeout_seconds: Mapping[str, float] | None = None,
        write_timeout_seconds: float = 60.0,
        pool_timeout_seconds: float = 60.0,
        poll_deadline_seconds: float = 600.0,
        poll_interval_seconds: float = 1.0,
        poll_max_interval_seconds: float = 5.0,
        max_connections: int = 256,
        connect_retries: int = 2,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.tasks_url = tasks_url.rstrip("/")
        self.gemini_base_url = (gemini_base_url or gemini.gemini_base_url(self.base_url)).rstrip("/")
        # The key goes on each request in the header its endpoint wants (Bearer, or Gemini's x-goog-api-key).
        self._auth = {
            "aihubmix": {"Authorization": f"Bearer {api_key}"},
            "gemini": {"x-goog-api-key": api_key},
        }
        self._timeout = httpx.Timeout(
            connect=connect_timeout_seconds,
            read=read_timeout_seconds,
            write=write_timeout_seconds,
            pool=pool_timeout_seconds,
        )
        # Slow models (gpt-image-2 at high quality answers after 90-130 s) get their own read timeout, so the
        # default need not grow for every other model.
        self._model_timeouts = {
            model_id: httpx.Timeout(
                connect=connect_timeout_seconds, read=seconds, write=write_timeout_seconds, pool=pool_timeout_seconds
            )
            for model_id, seconds in (model_read_timeout_seconds or {}).items()
        }
        self.poll_deadline_seconds = poll_deadline_seconds
        self.poll_interval_seconds = poll_interval_seconds
        self.poll_max_interval_seconds = poll_max_interval_seconds
        # httpx retries only failed connection attempts here, never a request that reached the upstream.
        self._http = httpx.AsyncClient(
            headers={"Accept": "application/json"},
            timeout=self._timeout,
            transport=transport or AiohttpTransport(max_connections=max_connections, retries=connect_retries),
            follow_redirects=False,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def run(
        self,
        call: ProviderCall,
        *,
        on_task_submitted: Callable[[str], Awaitable[None]] | None = None,
        on_partial: openai_compat.PartialSink | None = None,
        hold: AnswerHold | None = None,
    ) -> ProviderResult:
        """Send `call`; for async-task models, report the task id (so a crash can resume polling it) and poll; for
        a call in OpenAI's streaming mode, hand each partial image to `on_partial` as it comes. With `hold`, a whole
        answer is read only once its size fits the caller's answer budget (the caller releases the hold when it is
        done with the answer); a streamed answer is read as it comes, its partials not held back."""
        family = FAMILIES.get(call.family)
        if family is None:
            raise ValueError(f"unknown request family {call.family!r}")
        timeout = self._model_timeouts.get(call.model_id)
        if openai_compat.streams(call):
            return await self._run_streamed(openai_compat.build_request(call), timeout=timeout, on_partial=on_partial)
        response = await self._send(family.build_request(call), timeout=timeout, hold=hold)
        if not response.is_success:
            raise error_from_response(response)
        if call.family != "async_task":
            return family.parse_response(response)
        submitted = async_task.parse_submission(response)
        if isinstance(submitted, ProviderResult):
            return submitted
        task_id = submitted
        if on_task_submitted is not None:
            await on_task_submitted(task_id)
        return await self.task_poll(task_id)

    async def task_poll(self, task_id: str) -> ProviderResult:
        """Poll a submitted task with a growing interval until it ends or `poll_deadline_seconds` pass.

        Hiccups while polling (connection errors, 429, 5xx, a garbled answer) do not end the task: it keeps
        running upstream and has been paid for, so only the deadline gives up on it.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.poll_deadline_seconds
        interval = self.poll_interval_seconds
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise UnknownOutcomeError(
                    f"task {task_id} did not finish within {self.poll_deadline_seconds:g} s",
                    code="upstream_task_timeout",
                )
            await asyncio.sleep(min(interval, remaining))
            interval = min(interval * 1.5, self.poll_max_interval_seconds)
            try:
                response = await self._http.get(f"{self.tasks_url}/{task_id}", headers=self._auth["aihubmix"])
            except httpx.HTTPError as exc:
                logger.warning("aihubmix task poll failed", extra={"task_id": task_id, "error": repr(exc)})
                continue
            if response.status_code == 404:
                raise PermanentProviderError(
                    f"task {task_id} is unknown to the upstream", code="upstream_task_not_found", status=404
                )
            if response.status_code == 429 or response.status_code >= 500:
                interval = max(interval, retry_after_seconds(response) or 0.0)
                continue
            if not response.is_success:
                raise error_from_response(response)
            try:
                result = async_task.parse_poll(response, task_id=task_id)
            except MalformedResponse:
                logger.warning("aihubmix task poll answered garbage", extra={"task_id": task_id})
                continue
            if result is not None:
                return result

    async def _run_streamed(
        self, request: UpstreamRequest, *, timeout: httpx.Timeout | None, on_partial: openai_compat.PartialSink | None
    ) -> ProviderResult:
        """OpenAI's streaming mode: the answer is read as events while they come (the read timeout applies between
        them). An error status, or an upstream that answered plain JSON after all, is read as without streaming."""
        async with self._upstream_errors():
            response = await self._http.send(self._request_build(request, timeout=timeout), stream=True)
            try:
                if not response.is_success:
                    await response.aread()
                    raise error_from_response(response)
                if not openai_compat.is_event_stream(response):
                    await response.aread()
                    return openai_compat.parse_response(response)
                return await openai_compat.stream_read(response, on_partial=on_partial)
            finally:
                await response.aclose()

    def _request_build(self, request: UpstreamRequest, *, timeout: httpx.Timeout | None) -> httpx.Request:
        base_url = self.gemini_base_url if request.endpoint == "gemini" else self.base_url
        return self._http.build_request(
            request.method,
            f"{base_url}{request.path}",
            json=request.json,
            data=request.data,
            files=request.files,
            headers=self._auth[request.endpoint],
            timeout=timeout or self._timeout,
        )

    async def _send(
        self, request: UpstreamRequest, *, timeout: httpx.Timeout | None = None, hold: AnswerHold | None = None
    ) -> httpx.Response:
        async with self._upstream_errors():
            built = self._request_build(request, timeout=timeout)
            streamed = await self._http.send(built, stream=True)
            if streamed.is_stream_consumed:  # a test's MockTransport answer, read when it was made
                return streamed
            try:
                if hold is not None:
                    length = streamed.headers.get("Content-Length", "")
                    await hold.take(int(length) if length.isdigit() else UNKNOWN_ANSWER_BYTES)
                # Raw (still encoded) bytes, which the response below decodes: `aread()` would also keep them on
                # `streamed`, inside its cycle. The read timeout is aiohttp's between two reads; a whole body that
                # does not arrive within it is a read timeout too (a stalled answer must not hold its slot forever).
                try:
                    async with asyncio.timeout(built.extensions["timeout"]["read"]):
                        content = b"".join([part async for part in streamed.aiter_raw()])
                except TimeoutError as exc:
                    raise httpx.ReadTimeout("the answer's body did not arrive in time", request=built) from exc
            finally:
                await streamed.aclose()
            # A streamed httpx response and its stream refer to each other: a cycle that only the garbage collector
            # frees, which runs by object counts, not bytes, so thousands of 3 MB answers piled up (1.2 GB live in
            # a 300-call test). The answer goes on in a response of its own, which plain reference counting frees.
            return httpx.Response(
                streamed.status_code, headers=streamed.headers, content=content, request=built,
                extensions=streamed.extensions,
            )

    @contextlib.asynccontextmanager
    async def _upstream_errors(self) -> AsyncIterator[None]:
        """httpx's errors as what they mean for the call: never sent (transient) or maybe delivered (unknown
        outcome). Our own provider errors pass through."""
        try:
            yield
        except ProviderError:
            raise
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise TransientProviderError(
                "cannot reach the upstream", code="upstream_unreachable", detail=repr(exc)
            ) from exc
        except (httpx.WriteTimeout, httpx.WriteError) as exc:
            # The upstream acts only on a complete request, and this one never fully left.
            raise TransientProviderError(
                "sending the request to the upstream failed", code="upstream_unreachable", detail=repr(exc)
            ) from exc
        except httpx.TimeoutException as exc:
            raise UnknownOutcomeError(
                "the upstream did not answer in time after the request was sent", detail=repr(exc)
            ) from exc
        except httpx.HTTPError as exc:
            raise UnknownOutcomeError(
                "the connection to the upstream failed after the request was sent",
                code="upstream_connection_lost",
                detail=repr(exc),
            ) from exc
