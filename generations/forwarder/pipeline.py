"""One generation's way through the forwarder: call the upstream → verify the outputs → store them → settle.

The call holds one of the loop's slots until it is over (`call_over`); verifying, storing and settling run after the
slot went to the next claim. What an outcome settles to (and what it costs) is decided by
`generations.services.settle`; this module only reports what happened and logs it.
"""

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import structlog
from django.conf import settings

from generations.catalog.upstream_body import provider_call_from_stored
from generations.forwarder.database import DB_ERRORS, Database, LeaseExpired
from generations.forwarder.settling import SuccessBatches
from generations.images import VerifiedImage, output_materialize
from generations.metrics import SETTLEMENTS, UPSTREAM_FAILURES, UPSTREAM_IN_FLIGHT, UPSTREAM_SECONDS
from generations.models import Generation
from generations.providers import AIHubMixClient, InputImage, ProviderError, ProviderResult, RawOutput
from generations.providers.budget import AnswerBudget, AnswerHold
from generations.selectors import image_keys_recorded
from generations.services.cancel import generation_settle_canceled
from generations.services.leases import ClaimedGeneration, generation_task_id_record
from generations.services.partials import generation_partial_publish
from generations.services.settle import (
    Settlement,
    StoredOutput,
    Success,
    generation_settle,
    settlement_after_crash,
    settlement_for_error,
    settlement_for_unusable_answer,
)
from generations.storage import blob_delete, blob_read, blob_save_file, output_key_for

logger = structlog.get_logger(__name__)
T = TypeVar("T")

# How loudly each provider error is logged (`generation.<reason>`).
_ERROR_LOG_LEVELS = {
    "content_policy": "info",
    "unrecognized_response": "error",
    "permanent_error": "warning",
    "unknown_outcome": "warning",
    "transient_error": "info",
}


@dataclass
class InFlight:
    claim: ClaimedGeneration
    lease_deadline: float  # monotonic; our lease is certainly valid until then
    task: asyncio.Task | None = None
    calling: bool = True  # the upstream call is not over: it holds a slot and a cancel stops it
    cancel_reason: str | None = None  # "canceled" (tenant asked) or "lease_lost"
    upstream_sent: bool = False
    answer: AnswerHold | None = None  # the answer's bytes, counted until its files are stored


def _metric_code(code: str | None) -> str:
    """An upstream's own codes are free text: keep the label set small and printable."""
    if code and len(code) <= 40 and code.replace("_", "").isalnum() and code.isascii():
        return code
    return "other"


class Pipeline:
    def __init__(
        self,
        *,
        database: Database,
        successes: SuccessBatches,
        client: AIHubMixClient,
        downloads: httpx.AsyncClient,
        io_threads: ThreadPoolExecutor,
        verify_threads: ThreadPoolExecutor,
        call_over: Callable[[InFlight], None],
        answer_budget: AnswerBudget | None = None,
    ) -> None:
        self.answer_budget = answer_budget
        self.database = database
        self.successes = successes
        self.client = client
        self.downloads = downloads
        self.io_threads = io_threads
        self.verify_threads = verify_threads
        self.call_over = call_over

    async def run(self, entry: InFlight) -> None:
        claim = entry.claim
        log = logger.bind(
            generation=claim.public_id, tenant=claim.tenant_slug, attempt=claim.attempts, model=claim.model_id
        )
        entry.answer = AnswerHold(self.answer_budget)
        try:
            await self._run(entry, log)
        finally:
            entry.answer.release()

    async def _run(self, entry: InFlight, log: Any) -> None:
        claim = entry.claim
        try:
            try:
                result = await self._call_upstream(entry)
            except asyncio.CancelledError:
                if entry.cancel_reason is None:
                    raise  # shutting down: the lease runs out and the reaper requeues it
                asyncio.current_task().uncancel()  # our own cancel, handled here: the task goes on to settle
                self.call_over(entry)
                if entry.cancel_reason == "canceled":
                    await self.database.leased_write(
                        entry, generation_settle_canceled, claim=claim, call_abandoned=entry.upstream_sent
                    )
                    log.info("generation.canceled_in_flight")
                else:
                    log.warning("generation.lease_lost_in_flight")
                return
            self.call_over(entry)
            try:
                await self._store_and_settle(entry, result, log)
            except LeaseExpired:
                log.error("generation.lease_expired_before_settle")
            except Exception:
                # The upstream answered (and charged us); keep the generation moving instead of leaving it
                # running until the reaper notices.
                log.exception("generation.settle_crashed")
                await self._settle(entry, settlement_after_crash(claim=claim, answered=True))
        except ProviderError as error:
            self.call_over(entry)
            UPSTREAM_FAILURES.labels(_metric_code(error.code)).inc()
            settlement = settlement_for_error(claim=claim, error=error)
            await self._settle(entry, settlement)
            SETTLEMENTS.labels(settlement.reason).inc()
            retry_in = None if settlement.retry_in_seconds is None else round(settlement.retry_in_seconds, 1)
            getattr(log, _ERROR_LOG_LEVELS[settlement.reason])(
                f"generation.{settlement.reason}", code=error.code, status=error.status, retry_in=retry_in,
                detail=error.detail,
            )
        except LeaseExpired:
            log.error("generation.lease_expired_before_settle")
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("generation.forward_crashed")
            with contextlib.suppress(LeaseExpired):
                await self._settle(entry, settlement_after_crash(claim=claim, answered=False))

    async def _settle(self, entry: InFlight, settlement: Settlement) -> Generation | None:
        return await self.database.leased_write(entry, generation_settle, claim=entry.claim, settlement=settlement)

    async def _io(self, function: Callable[..., T], /, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.io_threads, lambda: function(**kwargs))

    async def _call_upstream(self, entry: InFlight) -> ProviderResult:
        claim = entry.claim
        loaded = [
            (item.role, InputImage(data=await self._io(blob_read, key=item.storage_key),
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
            await self.database.leased_write(entry, generation_task_id_record, claim=claim, upstream_task_id=task_id)

        async def relay_partial(index: int, b64_json: str) -> None:
            # A preview for the generation's event streams: best effort (a lost one is just not shown) and never a
            # reason to stop reading the answer; no retry, so a slow database does not stall the upstream's stream.
            try:
                await self.database.run(generation_partial_publish, generation_id=claim.id, index=index,
                                        b64_json=b64_json)
            except Exception as error:
                logger.warning("generation.partial_relay_failed", generation=claim.public_id, index=index,
                               error=repr(error)[:300])

        entry.upstream_sent = True
        started = time.monotonic()
        UPSTREAM_IN_FLIGHT.inc()
        try:
            return await self.client.run(
                call, on_task_submitted=remember_task, on_partial=relay_partial, hold=entry.answer
            )
        finally:
            UPSTREAM_IN_FLIGHT.dec()
            UPSTREAM_SECONDS.labels(claim.interface).observe(time.monotonic() - started)

    async def _store_and_settle(self, entry: InFlight, result: ProviderResult, log: Any) -> None:
        claim = entry.claim
        outputs = result.outputs[: claim.n]
        # A cancel that arrived since the last check is found under the settlement's row lock (no extra round trip
        # per generation here); the files stored meanwhile are then deleted.
        stored, refusals = await self._verify_and_store(claim, outputs)
        for error in refusals:
            log.warning("generation.output_rejected", error=repr(error), code=getattr(error, "code", None))
        if not stored:
            await self._settle(
                entry,
                settlement_for_unusable_answer(
                    claim=claim, refusals=refusals, images_answered=len(outputs), trace_id=result.trace_id
                ),
            )
            return
        settled = await self.successes.settle(entry, Success(claim=claim, outputs=stored, usage=result.usage))
        if settled is not None:
            SETTLEMENTS.labels(settled.status).inc()
        if settled is None:
            await self._unrecorded_delete(stored)
            log.warning("generation.lease_lost_before_settle")
        elif settled.status == Generation.Status.CANCELED:
            for output in stored:
                with contextlib.suppress(Exception):
                    await self._io(blob_delete, key=output.storage_key)
            log.info("generation.canceled_while_running", images=len(stored))
        else:
            log.info("generation.succeeded", images=len(stored))

    async def _unrecorded_delete(self, stored: list[StoredOutput]) -> None:
        """The lease was lost (taken over while this call ran): its attempt-keyed files are this forwarder's own.
        Delete those no image row records (one does only if an earlier try of this settlement committed and its
        answer was lost); if the database cannot tell, keep them: an orphan file is harmless, a recorded one not."""
        try:
            recorded = await self.database.run(image_keys_recorded, keys=[output.storage_key for output in stored])
        except DB_ERRORS:
            return
        for output in stored:
            if output.storage_key not in recorded:
                with contextlib.suppress(Exception):
                    await self._io(blob_delete, key=output.storage_key)

    async def _verify_and_store(
        self, claim: ClaimedGeneration, outputs: list[RawOutput]
    ) -> tuple[list[StoredOutput], list[BaseException]]:
        verified = await asyncio.gather(
            *(
                output_materialize(
                    raw,
                    max_bytes=settings.OUTPUT_MAX_BYTES,
                    max_pixels=settings.OUTPUT_MAX_PIXELS,
                    allow_private=settings.OUTPUT_FETCH_ALLOW_PRIVATE,
                    deadline_seconds=settings.OUTPUT_FETCH_DEADLINE_SECONDS,
                    spool_bytes=settings.OUTPUT_SPOOL_BYTES,
                    client=self.downloads,
                    executor=self.verify_threads,
                )
                for raw in outputs
            ),
            return_exceptions=True,
        )
        stored: list[StoredOutput] = []
        refusals: list[BaseException] = []
        for raw, image in zip(outputs, verified, strict=True):
            if isinstance(image, BaseException):
                refusals.append(image)
                continue
            try:
                stored.append(await self._store(claim, len(stored), image, raw.revised_prompt or ""))
            finally:
                image.discard()
        return stored, refusals

    async def _store(self, claim: ClaimedGeneration, index: int, image: VerifiedImage, revised: str) -> StoredOutput:
        key = output_key_for(
            tenant_slug=claim.tenant_slug, year_month=claim.created_at_path, public_id=claim.public_id,
            attempt=claim.attempts, index=index, extension=image.extension,
        )
        saved_key = await self._io(blob_save_file, key=key, file=image.file)
        return StoredOutput(
            index=index, storage_key=saved_key, content_type=image.content_type, width=image.width,
            height=image.height, byte_size=image.byte_size, sha256=image.sha256, revised_prompt=revised,
        )
