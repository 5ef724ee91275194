"""The forwarder: a long-running process that keeps up to FORWARD_CONCURRENCY upstream calls in flight.

`manage.py forwarder` runs one asyncio loop per process (run several for more). It is not a django-q2 task: an
upstream call takes 5–60 s, and a queue of per-submit wake-up tasks starved the scheduled work behind it. Instead:

- It learns of new work within milliseconds from `generations.notifications` (PostgreSQL LISTEN/NOTIFY, Redis
  pub/sub, or a short poll on SQLite) — coalesced: however many submits notify, the loop wakes once and claims
  what fits — and also re-checks every FORWARD_POLL_SECONDS, so a lost notice costs latency, never work.
- Claims are fair between tenants and respect each tenant's running cap (`generations.services.claims`).
- Database work runs on a small thread pool (FORWARD_DB_THREADS), never on the event loop, so settlements do not
  queue behind one thread. A database error is retried with backoff for as long as the generation's lease
  allows; the upstream call keeps running meanwhile and its result is stored and settled when the database is
  back, so an outage shorter than the lease sends nothing upstream twice.
- A cancel notice (or the periodic check of in-flight rows) cancels the in-flight asyncio task at once; the
  generation is settled `canceled`, the tenant pays nothing for the abandoned call and its possible upstream
  cost is recorded as ours.
- Every FORWARD_REAP_SECONDS the process also requeues leases that expired elsewhere (a killed forwarder), so
  recovery does not wait for the once-a-minute maintenance reaper.

`forward_drain()` runs the same machinery until nothing is claimable (tests, benches, one-off use).
"""

import asyncio
import contextlib
import random
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import structlog
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connections
from django.urls import get_resolver

from generations.catalog.upstream_body import provider_call_from_stored
from generations.images import InvalidOutput, VerifiedImage, output_materialize
from generations.models import Generation
from generations.notifications import GENERATION_CANCEL, GENERATION_FINISHED, WORK_AVAILABLE, asubscribe
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
    Success,
    generation_claim_batch,
    generation_fail,
    generation_leases_renew,
    generation_next_due_in_seconds,
    generation_retry_later,
    generation_settle_canceled,
    generation_succeed,
    generation_task_id_record,
    generations_reap,
    generations_succeed,
)
from generations.storage import blob_delete, blob_read, blob_save_file, output_key_for
from generations.upstream import aihubmix_client_from_settings
from project.safe_http import safe_get_client

logger = structlog.get_logger(__name__)
T = TypeVar("T")
DB_ERRORS = (OperationalError, InterfaceError)


class LeaseExpired(Exception):
    """The database stayed unreachable until this generation's lease ran out: another worker may take it."""


@dataclass
class PendingSuccess:
    entry: "InFlight"
    success: Success
    settled: asyncio.Future  # the Generation (None: lease lost), or LeaseExpired / the member's own error


@dataclass(frozen=True)
class DrainStats:
    claimed: int
    max_in_flight: int
    seconds: float


@dataclass
class InFlight:
    claim: ClaimedGeneration
    lease_deadline: float  # monotonic; our lease is certainly valid until then
    task: asyncio.Task | None = None
    phase: str = "upstream"  # "upstream" (cancellable) → "settling"
    cancel_reason: str | None = None  # "canceled" (tenant asked) or "lease_lost"
    upstream_sent: bool = False
    extra: dict = field(default_factory=dict)


def retry_delay_seconds(*, attempt: int, retry_after: float | None) -> float:
    """Exponential backoff with full jitter, never sooner than the upstream's Retry-After."""
    ceiling = min(settings.FORWARD_BACKOFF_MAX_SECONDS, settings.FORWARD_BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
    delay = random.uniform(ceiling / 2, ceiling)
    return max(delay, retry_after or 0.0)


def _db_call(function: Callable[..., T], kwargs: dict[str, Any]) -> T:
    try:
        return function(**kwargs)
    except DB_ERRORS:
        # The connection is unusable after this; the next call on this thread reconnects.
        with contextlib.suppress(Exception):
            connections["default"].close()
        raise


def _close_thread_connections() -> None:
    close_old_connections()
    connections.close_all()


class Forwarder:
    def __init__(self, *, concurrency: int, until_idle: bool = False) -> None:
        self.concurrency = concurrency
        self.until_idle = until_idle
        self.lease_seconds = settings.FORWARD_LEASE_SECONDS
        self.db_threads = ThreadPoolExecutor(max_workers=settings.FORWARD_DB_THREADS, thread_name_prefix="forwarder-db")
        # Few on purpose: verifying is CPU work, and a burst of answers verified on many threads at once starves
        # the event loop and the claim of the next calls (the GIL); queued ones wait a few milliseconds.
        self.verify_threads = ThreadPoolExecutor(
            max_workers=settings.FORWARD_VERIFY_THREADS, thread_name_prefix="forwarder-verify"
        )
        self.io_threads = ThreadPoolExecutor(
            max_workers=settings.FORWARD_STORAGE_THREADS, thread_name_prefix="forwarder-io"
        )
        self.in_flight: dict[int, InFlight] = {}
        self.wake = asyncio.Event()
        self.stopping = asyncio.Event()
        self.claimed = 0
        self.calling = 0  # entries still in the "upstream" phase: what FORWARD_CONCURRENCY bounds
        self.max_in_flight = 0
        self.last_claim = 0.0
        self.db_down_since: float | None = None
        self.successes: list[PendingSuccess] = []
        self.successes_waiting = asyncio.Event()

    # --- plumbing ---------------------------------------------------------------------------------------

    async def db(self, function: Callable[..., T], /, *, until: float | None = None, **kwargs: Any) -> T:
        """Run `function` on the database pool. Database errors are retried with backoff until `until`
        (a monotonic deadline; None: no retry) and then re-raised."""
        delay = 0.05
        loop = asyncio.get_running_loop()
        while True:
            try:
                result = await loop.run_in_executor(self.db_threads, partial(_db_call, function, kwargs))
            except DB_ERRORS as error:
                if self.db_down_since is None:
                    self.db_down_since = time.monotonic()
                    logger.warning("forwarder.database_unavailable", error=repr(error)[:300])
                if until is None or time.monotonic() + delay >= until:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, settings.FORWARD_DB_RETRY_MAX_SECONDS)
                continue
            if self.db_down_since is not None:
                logger.warning("forwarder.database_back", after_seconds=round(time.monotonic() - self.db_down_since, 1))
                self.db_down_since = None
            return result

    async def io(self, function: Callable[..., T], /, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.io_threads, lambda: function(**kwargs))

    # --- the loop ---------------------------------------------------------------------------------------

    async def run(self) -> DrainStats:
        started = time.monotonic()
        background: list[asyncio.Task] = []
        try:
            async with (
                aihubmix_client_from_settings() as client,
                safe_get_client(timeout_seconds=settings.OUTPUT_FETCH_DEADLINE_SECONDS) as downloads,
            ):
                self.client = client
                self.downloads = downloads
                background.append(asyncio.create_task(self._succeed_loop()))
                background.append(asyncio.create_task(self._renew_loop()))
                background.append(asyncio.create_task(self._cancel_poll_loop()))
                if not self.until_idle:
                    background.append(asyncio.create_task(self._listen_loop()))
                    background.append(asyncio.create_task(self._reap_loop()))
                await self._claim_loop()
                await self._finish_in_flight()
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await self._close_db_connections()
            self.db_threads.shutdown(wait=True)
            self.io_threads.shutdown(wait=True)
            self.verify_threads.shutdown(wait=True)
        return DrainStats(claimed=self.claimed, max_in_flight=self.max_in_flight, seconds=time.monotonic() - started)

    async def _close_db_connections(self) -> None:
        """Each pool thread has its own connection; a barrier makes every thread run exactly one close."""
        threads = settings.FORWARD_DB_THREADS
        barrier = threading.Barrier(threads, timeout=5)

        def close() -> None:
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait()
            _close_thread_connections()

        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(loop.run_in_executor(self.db_threads, close) for _ in range(threads)), return_exceptions=True
        )

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    async def _claim_loop(self) -> None:
        idle_since: float | None = None
        min_batch = max(1, self.concurrency // 20)
        while not self.stopping.is_set():
            self.wake.clear()
            # A slot is an upstream call: one whose answer is being verified, stored and settled no longer holds
            # one, so the next call starts while it settles. Settling ones are bounded too (by the concurrency
            # again), which bounds the spooled outputs held at once.
            free = min(self.concurrency - self.calling, 2 * self.concurrency - len(self.in_flight))
            # Coalesce refills: claim a batch rather than one row per finished call, unless the loop is idle
            # or the last claim was a while ago (slots stay ≥ 95 % full).
            due_for_claim = free >= min_batch or not self.in_flight or time.monotonic() - self.last_claim > 0.1
            claims: list[ClaimedGeneration] = []
            if free > 0 and due_for_claim:
                try:
                    claims = await self.db(generation_claim_batch, limit=free, lease_seconds=self.lease_seconds)
                except DB_ERRORS:
                    await self._sleep_or_wake(min(1.0, settings.FORWARD_DB_RETRY_MAX_SECONDS))
                    continue
                self.last_claim = time.monotonic()
                for claim in claims:
                    self._start(claim)
            if self.until_idle and not self.in_flight and not claims:
                # Nothing to do: stop, unless a retry becomes due shortly (wait for it rather than the reaper).
                try:
                    due = await self.db(generation_next_due_in_seconds)
                except DB_ERRORS:
                    due = 0.0
                idle_since = idle_since or time.monotonic()
                waited = time.monotonic() - idle_since
                if due is None or due > settings.FORWARD_IDLE_WAIT_SECONDS or waited > settings.FORWARD_IDLE_WAIT_SECONDS:
                    return
                await asyncio.sleep(min(max(due, 0.02), 0.5))
                continue
            idle_since = None
            if claims and len(claims) == free:
                timeout = settings.FORWARD_POLL_SECONDS * 10  # full: only a finished call frees a slot
            else:
                timeout = settings.FORWARD_POLL_SECONDS
            await self._sleep_or_wake(timeout)

    async def _sleep_or_wake(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), timeout)

    async def _finish_in_flight(self) -> None:
        if self.in_flight:
            tasks = [entry.task for entry in self.in_flight.values() if entry.task is not None]
            await asyncio.wait(tasks, timeout=settings.FORWARD_SHUTDOWN_GRACE_SECONDS)
        for entry in list(self.in_flight.values()):
            if entry.task is not None and not entry.task.done():
                # Left to the lease: the reaper requeues it (recorded as a possibly charged, unknown outcome).
                entry.task.cancel()
        if self.in_flight:
            await asyncio.gather(*(e.task for e in self.in_flight.values() if e.task), return_exceptions=True)

    def _start(self, claim: ClaimedGeneration) -> None:
        entry = InFlight(claim=claim, lease_deadline=time.monotonic() + self.lease_seconds - 1.0)
        entry.task = asyncio.create_task(self._process(entry))
        entry.task.add_done_callback(lambda _task, gid=claim.id: self._done(gid))
        self.in_flight[claim.id] = entry
        self.claimed += 1
        self.calling += 1
        self.max_in_flight = max(self.max_in_flight, self.calling)

    def _settling(self, entry: InFlight) -> None:
        """The upstream call is over (answered, failed or abandoned): its slot is free for the next claim."""
        if entry.phase == "upstream":
            entry.phase = "settling"
            self.calling -= 1
            self.wake.set()

    def _done(self, generation_id: int) -> None:
        entry = self.in_flight.pop(generation_id, None)
        if entry is not None:
            self._settling(entry)
        self.wake.set()

    # --- background duties ------------------------------------------------------------------------------

    async def _listen_loop(self) -> None:
        """Wake the claim loop on new work or on a finished generation (which may free a tenant's slot), and
        cancel in-flight calls on cancel notices."""
        async with (
            asubscribe(WORK_AVAILABLE) as work,
            asubscribe(GENERATION_FINISHED) as finished,
            asubscribe(GENERATION_CANCEL) as cancels,
        ):

            async def wake_on(subscription) -> None:
                while True:
                    if await subscription.wait(settings.FORWARD_POLL_SECONDS):
                        subscription.take_keys()
                        self.wake.set()

            async def cancel_on(subscription) -> None:
                while True:
                    if await subscription.wait(settings.FORWARD_POLL_SECONDS):
                        for key in subscription.take_keys():
                            with contextlib.suppress(ValueError):
                                self._cancel(int(key), reason="canceled")

            await asyncio.gather(wake_on(work), wake_on(finished), cancel_on(cancels))

    async def _cancel_poll_loop(self) -> None:
        """Cancel requests whose notice was lost still stop the call within FORWARD_CANCEL_POLL_SECONDS."""
        while True:
            await asyncio.sleep(settings.FORWARD_CANCEL_POLL_SECONDS)
            ids = [gid for gid, entry in self.in_flight.items() if entry.phase == "upstream"]
            if not ids:
                continue
            with contextlib.suppress(*DB_ERRORS):
                for gid in await self.db(_cancel_requested_among, ids=ids):
                    self._cancel(gid, reason="canceled")

    def _cancel(self, generation_id: int, *, reason: str) -> None:
        entry = self.in_flight.get(generation_id)
        if entry is None or entry.phase != "upstream" or entry.task is None or entry.cancel_reason:
            return
        entry.cancel_reason = reason
        entry.task.cancel()

    async def _succeed_loop(self) -> None:
        """Settle successes in batches: whatever finished within FORWARD_SETTLE_BATCH_SECONDS of the first one (and
        whatever finishes while a batch is being written) goes into one transaction of a few statements, instead
        of a dozen statements and a round trip through the database pool per generation."""
        while True:
            await self.successes_waiting.wait()
            await asyncio.sleep(settings.FORWARD_SETTLE_BATCH_SECONDS)
            size = settings.FORWARD_SETTLE_BATCH_MAX
            batch, self.successes = self.successes[:size], self.successes[size:]
            if not self.successes:
                self.successes_waiting.clear()
            await self._succeed_batch(batch)

    async def _succeed_batch(self, batch: list[PendingSuccess]) -> None:
        while batch:
            try:
                # Retried through database errors (the batch is one transaction: nothing is captured twice) until
                # the first member's lease runs out; that member then gives up and the others go on.
                results = await self.db(
                    generations_succeed, until=min(p.entry.lease_deadline for p in batch),
                    successes=[p.success for p in batch],
                )
            except DB_ERRORS:
                first = min(batch, key=lambda p: p.entry.lease_deadline)
                soon = time.monotonic() + settings.FORWARD_DB_RETRY_MAX_SECONDS
                expired = [p for p in batch if p is first or p.entry.lease_deadline <= soon]
                for pending in expired:
                    pending.settled.set_exception(LeaseExpired())
                batch = [p for p in batch if p not in expired]
                continue
            except Exception:
                # One member's problem (a bug, a missing hold) must not hold back the others: settle each alone,
                # so only that one fails.
                logger.exception("forwarder.batch_settle_failed", size=len(batch))
                await asyncio.gather(*(self._succeed_alone(pending) for pending in batch))
                return
            for pending in batch:
                pending.settled.set_result(results[pending.success.claim.id])
            return

    async def _succeed_alone(self, pending: PendingSuccess) -> None:
        try:
            success = pending.success
            result = await self.db(
                generation_succeed, until=pending.entry.lease_deadline, claim=success.claim, outputs=success.outputs,
                usage=success.usage,
            )
        except DB_ERRORS:
            pending.settled.set_exception(LeaseExpired())
        except Exception as error:
            pending.settled.set_exception(error)
        else:
            pending.settled.set_result(result)

    async def _succeed(self, entry: InFlight, success: Success) -> Generation | None:
        pending = PendingSuccess(entry=entry, success=success, settled=asyncio.get_running_loop().create_future())
        self.successes.append(pending)
        self.successes_waiting.set()
        # Shielded like every settling write: a cancel or shutdown never abandons a settlement half way.
        return await asyncio.shield(pending.settled)

    async def _renew_loop(self) -> None:
        interval = max(self.lease_seconds / 3, 0.2)
        while True:
            await asyncio.sleep(interval if self.db_down_since is None else 0.25)
            entries = list(self.in_flight.values())
            if not entries:
                continue
            renewed_at = time.monotonic()
            try:
                held = await self.db(
                    generation_leases_renew, claims=[e.claim for e in entries], lease_seconds=self.lease_seconds
                )
            except DB_ERRORS:
                continue  # retried on the short interval until the database answers again
            for entry in entries:
                if entry.claim.id in held:
                    entry.lease_deadline = renewed_at + self.lease_seconds - 1.0
                elif entry.claim.id in self.in_flight:
                    # Reaped or settled elsewhere: whatever this call returns can no longer be recorded.
                    self._cancel(entry.claim.id, reason="lease_lost")

    async def _reap_loop(self) -> None:
        while True:
            await asyncio.sleep(settings.FORWARD_REAP_SECONDS * random.uniform(0.8, 1.2))
            try:
                result = await self.db(generations_reap)
            except DB_ERRORS:
                continue
            if result.requeued or result.failed:
                logger.info("forwarder.reaped", requeued=result.requeued, failed=result.failed)
                self.wake.set()

    # --- one generation ---------------------------------------------------------------------------------

    async def _process(self, entry: InFlight) -> None:
        claim = entry.claim
        log = logger.bind(
            generation=claim.public_id, tenant=claim.tenant_slug, attempt=claim.attempts, model=claim.model_id
        )
        try:
            try:
                result = await self._call_upstream(entry)
            except asyncio.CancelledError:
                if entry.cancel_reason is None:
                    raise  # shutting down: the lease runs out and the reaper requeues it
                asyncio.current_task().uncancel()  # our own cancel, handled here: the task goes on to settle
                self._settling(entry)
                if entry.cancel_reason == "canceled":
                    await self._settle_db(
                        entry, generation_settle_canceled, claim=claim, images_returned=0,
                        call_abandoned=entry.upstream_sent,
                    )
                    log.info("generation.canceled_in_flight")
                else:
                    log.warning("generation.lease_lost_in_flight")
                return
            self._settling(entry)
            try:
                await self._settle(entry, result, log)
            except LeaseExpired:
                log.error("generation.lease_expired_before_settle")
            except Exception:
                # The upstream answered (and charged us); keep the generation moving instead of leaving it
                # running until the reaper notices. The retry is recorded as an unknown outcome.
                log.exception("generation.settle_crashed")
                await self._retry_after_crash(entry, unknown_outcome=True)
        except ContentPolicyError as error:
            self._settling(entry)
            await self._settle_db(entry, generation_fail, claim=claim, failure=_failure(error, "content_policy_violation"))
            log.info("generation.content_policy", code=error.code)
        except MalformedResponse as error:
            # Delivered and probably charged, but unreadable: failing it (refunding the tenant, recording our
            # loss) is cheaper than paying again for the same misunderstanding. The body is kept for staff.
            self._settling(entry)
            failure = Failure(
                code=error.code,
                message=error.message,
                upstream_status=error.status,
                trace_id=error.trace_id,
                upstream_response=error.body,
            )
            await self._settle_db(
                entry, generation_fail, claim=claim, failure=failure,
                upstream_cost_micros=claim.unit_cost_micros * claim.n,
            )
            log.error("generation.unrecognized_response", code=error.code)
        except PermanentProviderError as error:
            self._settling(entry)
            await self._settle_db(entry, generation_fail, claim=claim, failure=_failure(error, error.code))
            log.warning("generation.permanent_error", code=error.code, status=error.status, detail=error.detail)
        except UnknownOutcomeError as error:
            self._settling(entry)
            delay = retry_delay_seconds(attempt=claim.attempts, retry_after=None)
            await self._settle_db(
                entry, generation_retry_later, claim=claim, failure=_failure(error, error.code), delay_seconds=delay,
                unknown_outcome=True,
            )
            log.warning("generation.unknown_outcome", code=error.code, detail=error.detail)
        except ProviderError as error:
            self._settling(entry)
            retry_after = error.retry_after if isinstance(error, TransientProviderError) else None
            delay = retry_delay_seconds(attempt=claim.attempts, retry_after=retry_after)
            await self._settle_db(
                entry, generation_retry_later, claim=claim, failure=_failure(error, error.code), delay_seconds=delay
            )
            log.info("generation.transient_error", code=error.code, status=error.status, retry_in=round(delay, 1),
                     detail=error.detail)
        except LeaseExpired:
            log.error("generation.lease_expired_before_settle")
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("generation.forward_crashed")
            with contextlib.suppress(LeaseExpired):
                await self._retry_after_crash(entry)

    async def _settle_db(self, entry: InFlight, function: Callable[..., T], /, **kwargs: Any) -> T:
        """A settling write: retried through database errors while our lease holds. Shielded from cancellation
        so a half-done settle is never abandoned by a cancel or shutdown."""
        try:
            return await asyncio.shield(self.db(function, until=entry.lease_deadline, **kwargs))
        except DB_ERRORS as error:
            raise LeaseExpired() from error

    async def _retry_after_crash(self, entry: InFlight, *, unknown_outcome: bool = False) -> None:
        await self._settle_db(
            entry,
            generation_retry_later,
            claim=entry.claim,
            failure=Failure("internal_error", "An internal error interrupted this generation; retrying."),
            delay_seconds=retry_delay_seconds(attempt=entry.claim.attempts, retry_after=None),
            unknown_outcome=unknown_outcome,
        )

    async def _call_upstream(self, entry: InFlight) -> ProviderResult:
        claim = entry.claim
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
            await self._settle_db(entry, generation_task_id_record, claim=claim, upstream_task_id=task_id)

        entry.upstream_sent = True
        return await self.client.run(call, on_task_submitted=remember_task)

    async def _settle(self, entry: InFlight, result: ProviderResult, log: Any) -> None:
        claim = entry.claim
        outputs = result.outputs[: claim.n]
        # A cancel that arrived since the last check is found under the settlement's row lock (no extra round trip
        # per generation here); the files stored meanwhile are then deleted.
        stored, errors = await self._verify_and_store(claim, outputs)
        for error in errors:
            log.warning("generation.output_rejected", error=repr(error), code=getattr(error, "code", None))
        if not stored:
            first = errors[0] if errors else None
            code = getattr(first, "code", "no_output") if isinstance(first, InvalidOutput) else "no_output"
            message = (
                f"The upstream's image was refused: {first.message}." if isinstance(first, InvalidOutput)
                else "The upstream returned no usable images."
            )
            await self._settle_db(
                entry,
                generation_fail,
                claim=claim,
                failure=Failure(code, message, trace_id=result.trace_id),
                upstream_cost_micros=claim.unit_cost_micros * max(len(outputs), 1),
            )
            return
        settled = await self._succeed(entry, Success(claim=claim, outputs=stored, usage=result.usage))
        if settled is None:
            log.warning("generation.lease_lost_before_settle")
        elif settled.status == Generation.Status.CANCELED:
            for output in stored:
                with contextlib.suppress(Exception):
                    await self.io(blob_delete, key=output.storage_key)
            log.info("generation.canceled_while_running", images=len(stored))
        else:
            log.info("generation.succeeded", images=len(stored))

    async def _verify_and_store(
        self, claim: ClaimedGeneration, outputs: list
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
        errors: list[BaseException] = []
        for raw, image in zip(outputs, verified, strict=True):
            if isinstance(image, BaseException):
                errors.append(image)
                continue
            try:
                stored.append(await self._store(claim, len(stored), image, raw.revised_prompt or ""))
            finally:
                image.discard()
        return stored, errors

    async def _store(self, claim: ClaimedGeneration, index: int, image: VerifiedImage, revised: str) -> StoredOutput:
        key = output_key_for(
            tenant_slug=claim.tenant_slug, year_month=claim.created_at_path, public_id=claim.public_id,
            index=index, extension=image.extension,
        )
        saved_key = await self.io(blob_save_file, key=key, file=image.file)
        return StoredOutput(
            index=index, storage_key=saved_key, content_type=image.content_type, width=image.width,
            height=image.height, byte_size=image.byte_size, sha256=image.sha256, revised_prompt=revised,
        )


def _cancel_requested_among(*, ids: list[int]) -> list[int]:
    return list(Generation.objects.filter(id__in=ids, cancel_requested=True).values_list("id", flat=True))


def _failure(error: ProviderError, code: str) -> Failure:
    return Failure(code=code, message=error.message, upstream_status=error.status, trace_id=error.trace_id)


def forward_drain(*, concurrency: int | None = None) -> DrainStats:
    """Forward until nothing is claimable and nothing is in flight (tests, benches, one-off runs)."""
    forwarder = Forwarder(concurrency=concurrency or settings.FORWARD_CONCURRENCY, until_idle=True)
    stats = asyncio.run(forwarder.run())
    if stats.claimed:
        logger.info("forwarder.drained", claimed=stats.claimed, max_in_flight=stats.max_in_flight,
                    seconds=round(stats.seconds, 2))
    return stats


def forward_forever(
    *, concurrency: int | None = None, on_started: Callable[[int], None] | None = None
) -> DrainStats:
    """The `manage.py forwarder` process: forward until SIGTERM/SIGINT, then finish what is in flight (up to
    FORWARD_SHUTDOWN_GRACE_SECONDS) and exit."""

    _url_resolver_load()

    async def main() -> DrainStats:
        forwarder = Forwarder(concurrency=concurrency or settings.FORWARD_CONCURRENCY)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, forwarder.stop)
        if on_started is not None:
            on_started(forwarder.concurrency)
        return await forwarder.run()

    # uvloop (installed with uvicorn[standard]) runs the loop's own plumbing in C: ~1 ms less CPU per generation
    # in bench/drain.py, where the loop handles hundreds of answers arriving together.
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(main())


def _url_resolver_load() -> None:
    """Webhook payloads carry image URLs, so the first settlement reverses one, and Django then builds its reverse
    index of the whole URLconf (~150 ms holding the GIL, py-spy) just as the first answers settle and the next calls
    go out. Built at start-up instead."""
    get_resolver().reverse_dict  # noqa: B018 - reading the property builds it


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # not built for this platform: the standard loop
        return None
    return uvloop.new_event_loop
