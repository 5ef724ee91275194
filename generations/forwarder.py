"""The forwarder: one django-q2 task drains the queue with many upstream calls in flight.

django-q2 runs one task at a time per worker process and an upstream call takes 5–60 s, so one generation per task
would cap a worker at one generation in flight. Instead the task runs an asyncio loop that claims queued
generations under a lease, keeps up to FORWARD_CONCURRENCY upstream calls open on one httpx.AsyncClient, refills
as slots free, and returns when nothing is claimable or its claim budget is spent. Database work runs on one
dedicated thread in short transactions between upstream steps; storage I/O on a small pool of its own.
"""

import asyncio
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from django.conf import settings
from django.db import close_old_connections, connections

from generations.catalog import provider_call_from_stored
from generations.images import InvalidOutput, VerifiedImage, output_materialize
from generations.providers import (
    ContentPolicyError,
    InputImage,
    MalformedResponse,
    PermanentProviderError,
    ProviderError,
    ProviderResult,
    TransientProviderError,
    UnknownOutcomeError,
)
from generations.services.lifecycle import (
    ClaimedGeneration,
    Failure,
    StoredOutput,
    generation_cancel_requested,
    generation_claim_batch,
    generation_fail,
    generation_leases_renew,
    generation_next_due_in_seconds,
    generation_retry_later,
    generation_settle_canceled,
    generation_succeed,
    generation_task_id_record,
)
from generations.storage import blob_read, blob_save, output_key_for
from generations.upstream import aihubmix_client_from_settings

logger = structlog.get_logger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class DrainStats:
    claimed: int
    max_in_flight: int
    seconds: float


def retry_delay_seconds(*, attempt: int, retry_after: float | None) -> float:
    """Exponential backoff with full jitter, never sooner than the upstream's Retry-After."""
    ceiling = min(settings.FORWARD_BACKOFF_MAX_SECONDS, settings.FORWARD_BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
    delay = random.uniform(ceiling / 2, ceiling)
    return max(delay, retry_after or 0.0)


class Drain:
    def __init__(self, *, concurrency: int, claim_budget_seconds: float) -> None:
        self.concurrency = concurrency
        self.claim_deadline = time.monotonic() + claim_budget_seconds
        self.db_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="forwarder-db")
        self.io_threads = ThreadPoolExecutor(max_workers=settings.FORWARD_STORAGE_THREADS, thread_name_prefix="forwarder-io")
        self.in_flight: dict[asyncio.Task[None], ClaimedGeneration] = {}
        self.claimed = 0
        self.max_in_flight = 0

    async def db(self, function: Callable[..., T], /, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.db_thread, lambda: function(**kwargs))

    async def io(self, function: Callable[..., T], /, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.io_threads, lambda: function(**kwargs))

    async def run(self) -> DrainStats:
        started = time.monotonic()
        try:
            async with aihubmix_client_from_settings() as client:
                self.client = client
                await self._loop()
        finally:
            await self.db(_close_thread_connections)
            self.db_thread.shutdown(wait=True)
            self.io_threads.shutdown(wait=True)
        return DrainStats(claimed=self.claimed, max_in_flight=self.max_in_flight, seconds=time.monotonic() - started)

    async def _loop(self) -> None:
        last_renewal = time.monotonic()
        while True:
            free = self.concurrency - len(self.in_flight)
            if free > 0 and time.monotonic() < self.claim_deadline:
                claims = await self.db(
                    generation_claim_batch, limit=free, lease_seconds=settings.FORWARD_LEASE_SECONDS
                )
                for claim in claims:
                    task = asyncio.create_task(self._process(claim))
                    self.in_flight[task] = claim
                self.claimed += len(claims)
                self.max_in_flight = max(self.max_in_flight, len(self.in_flight))
            if not self.in_flight:
                wait = await self.db(generation_next_due_in_seconds)
                remaining = self.claim_deadline - time.monotonic()
                if wait is None or wait > min(remaining, settings.FORWARD_IDLE_WAIT_SECONDS):
                    return
                # A retry is due shortly: wait for it here rather than leave it to the minute-granular reaper.
                await asyncio.sleep(max(wait, 0.01))
                continue
            done, _ = await asyncio.wait(
                self.in_flight, timeout=settings.FORWARD_REFILL_SECONDS, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                self.in_flight.pop(task)
            if time.monotonic() - last_renewal > settings.FORWARD_LEASE_SECONDS / 3 and self.in_flight:
                await self.db(
                    generation_leases_renew,
                    claims=list(self.in_flight.values()),
                    lease_seconds=settings.FORWARD_LEASE_SECONDS,
                )
                last_renewal = time.monotonic()

    async def _process(self, claim: ClaimedGeneration) -> None:
        log = logger.bind(
            generation=claim.public_id, tenant=claim.tenant_slug, attempt=claim.attempts, model=claim.model_id
        )
        try:
            result = await self._call_upstream(claim)
        except ContentPolicyError as error:
            await self.db(generation_fail, claim=claim, failure=_failure(error, "content_policy_violation"))
            log.info("generation.content_policy", code=error.code)
        except MalformedResponse as error:
            # Delivered and probably charged, but unreadable: failing it (refunding the tenant, recording our
            # loss) is cheaper than paying again for the same misunderstanding. The body is kept for staff.
            failure = Failure(
                code=error.code,
                message=error.message,
                upstream_status=error.status,
                trace_id=error.trace_id,
                upstream_response=error.body,
            )
            await self.db(
                generation_fail, claim=claim, failure=failure, upstream_cost_micros=claim.unit_cost_micros * claim.n
            )
            log.error("generation.unrecognized_response", code=error.code)
        except PermanentProviderError as error:
            await self.db(generation_fail, claim=claim, failure=_failure(error, error.code))
            log.warning("generation.permanent_error", code=error.code, status=error.status, detail=error.detail)
        except UnknownOutcomeError as error:
            delay = retry_delay_seconds(attempt=claim.attempts, retry_after=None)
            await self.db(
                generation_retry_later, claim=claim, failure=_failure(error, error.code), delay_seconds=delay,
                unknown_outcome=True,
            )
            log.warning("generation.unknown_outcome", code=error.code, detail=error.detail)
        except ProviderError as error:
            retry_after = error.retry_after if isinstance(error, TransientProviderError) else None
            delay = retry_delay_seconds(attempt=claim.attempts, retry_after=retry_after)
            await self.db(generation_retry_later, claim=claim, failure=_failure(error, error.code), delay_seconds=delay)
            log.info("generation.transient_error", code=error.code, status=error.status, retry_in=round(delay, 1),
                     detail=error.detail)
        except Exception:
            log.exception("generation.forward_crashed")
            await self._retry_after_crash(claim)
        else:
            try:
                await self._settle(claim, result, log)
            except Exception:
                # The upstream answered (and charged us); keep the generation moving instead of leaving it
                # running until the reaper notices. The retry is recorded as an unknown outcome.
                log.exception("generation.settle_crashed")
                await self._retry_after_crash(claim, unknown_outcome=True)

    async def _retry_after_crash(self, claim: ClaimedGeneration, *, unknown_outcome: bool = False) -> None:
        await self.db(
            generation_retry_later,
            claim=claim,
            failure=Failure("internal_error", "An internal error interrupted this generation; retrying."),
            delay_seconds=retry_delay_seconds(attempt=claim.attempts, retry_after=None),
            unknown_outcome=unknown_outcome,
        )

    async def _call_upstream(self, claim: ClaimedGeneration) -> ProviderResult:
        loaded = [
            (item.role, InputImage(data=await self.io(blob_read, key=item.storage_key),
                                   content_type=item.content_type, filename=item.storage_key.rsplit("/", 1)[-1]))
            for item in claim.inputs
        ]
        call = provider_call_from_stored(
            model_id=claim.model_id,
            interface=claim.interface,
            operation=claim.operation,
            body=claim.upstream_body,
            images=[image for role, image in loaded if role == "image"],
            mask=next((image for role, image in loaded if role == "mask"), None),
        )

        async def remember_task(task_id: str) -> None:
            await self.db(generation_task_id_record, claim=claim, upstream_task_id=task_id)

        return await self.client.run(call, on_task_submitted=remember_task)

    async def _settle(self, claim: ClaimedGeneration, result: ProviderResult, log: Any) -> None:
        outputs = result.outputs[: claim.n]
        if await self.db(generation_cancel_requested, claim=claim):
            await self.db(generation_settle_canceled, claim=claim, images_returned=len(outputs))
            log.info("generation.canceled_while_running", images=len(outputs))
            return
        verified = await asyncio.gather(
            *(
                output_materialize(
                    raw,
                    max_bytes=settings.OUTPUT_MAX_BYTES,
                    max_pixels=settings.OUTPUT_MAX_PIXELS,
                    allow_private=settings.OUTPUT_FETCH_ALLOW_PRIVATE,
                    deadline_seconds=settings.OUTPUT_FETCH_DEADLINE_SECONDS,
                )
                for raw in outputs
            ),
            return_exceptions=True,
        )
        stored: list[StoredOutput] = []
        errors: list[BaseException] = []
        for raw, image in zip(outputs, verified, strict=True):
            if isinstance(image, BaseException):
                errors.append(image)
                continue
            stored.append(await self._store(claim, len(stored), image, raw.revised_prompt or ""))
        for error in errors:
            log.warning("generation.output_rejected", error=repr(error), code=getattr(error, "code", None))
        if not stored:
            first = errors[0] if errors else None
            code = getattr(first, "code", "no_output") if isinstance(first, InvalidOutput) else "no_output"
            message = (
                f"The upstream's image was refused: {first.message}." if isinstance(first, InvalidOutput)
                else "The upstream returned no usable images."
            )
            await self.db(
                generation_fail,
                claim=claim,
                failure=Failure(code, message, trace_id=result.trace_id),
                upstream_cost_micros=claim.unit_cost_micros * max(len(outputs), 1),
            )
            return
        if await self.db(generation_succeed, claim=claim, outputs=stored, usage=result.usage) is None:
            log.warning("generation.lease_lost_before_settle")
        else:
            log.info("generation.succeeded", images=len(stored))

    async def _store(self, claim: ClaimedGeneration, index: int, image: VerifiedImage, revised: str) -> StoredOutput:
        key = output_key_for(
            tenant_slug=claim.tenant_slug, year_month=claim.created_at_path, public_id=claim.public_id,
            index=index, extension=image.extension,
        )
        saved_key = await self.io(blob_save, key=key, data=image.data)
        return StoredOutput(
            index=index, storage_key=saved_key, content_type=image.content_type, width=image.width,
            height=image.height, byte_size=image.byte_size, sha256=image.sha256, revised_prompt=revised,
        )


def _failure(error: ProviderError, code: str) -> Failure:
    return Failure(code=code, message=error.message, upstream_status=error.status, trace_id=error.trace_id)


def _close_thread_connections() -> None:
    close_old_connections()
    connections.close_all()


def forward_drain(*, concurrency: int | None = None, claim_budget_seconds: float | None = None) -> DrainStats:
    drain = Drain(
        concurrency=concurrency or settings.FORWARD_CONCURRENCY,
        claim_budget_seconds=claim_budget_seconds or settings.FORWARD_CLAIM_BUDGET_SECONDS,
    )
    stats = asyncio.run(drain.run())
    if stats.claimed:
        logger.info("forwarder.drained", claimed=stats.claimed, max_in_flight=stats.max_in_flight,
                    seconds=round(stats.seconds, 2))
    return stats
