"""The forwarder process: one asyncio loop that claims, keeps the leases, listens for notices and starts one
pipeline task per claimed generation; `forward_forever` (`manage.py forwarder`) and `forward_drain`."""

import asyncio
import contextlib
import random
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import structlog
from django.conf import settings
from django.urls import get_resolver

from generations.forwarder.database import DB_ERRORS, Database
from generations.forwarder.pipeline import InFlight, Pipeline
from generations.forwarder.settling import SuccessBatches
from generations.notifications import GENERATION_CANCEL, GENERATION_FINISHED, WORK_AVAILABLE, asubscribe
from generations.providers.budget import AnswerBudget
from generations.selectors import generations_cancel_requested
from generations.services.deadlines import generations_deadlines_enforce
from generations.services.leases import (
    ClaimedGeneration,
    generation_claim_batch,
    generation_leases_renew,
    generation_next_due_in_seconds,
    generations_reap,
)
from generations.upstream import aihubmix_client_from_settings
from project.safe_http import safe_get_client

logger = structlog.get_logger(__name__)


@dataclass(frozen=True)
class DrainStats:
    claimed: int
    max_in_flight: int
    seconds: float


class Forwarder:
    def __init__(self, *, concurrency: int, until_idle: bool = False) -> None:
        self.concurrency = concurrency
        self.until_idle = until_idle
        self.lease_seconds = settings.FORWARD_LEASE_SECONDS
        self.database = Database(threads=settings.FORWARD_DB_THREADS)
        # Few on purpose: verifying is CPU work, and a burst of answers verified on many threads at once starves
        # the event loop and the claim of the next calls (the GIL); queued ones wait a few milliseconds.
        self.verify_threads = ThreadPoolExecutor(
            max_workers=settings.FORWARD_VERIFY_THREADS, thread_name_prefix="forwarder-verify"
        )
        self.io_threads = ThreadPoolExecutor(
            max_workers=settings.FORWARD_STORAGE_THREADS, thread_name_prefix="forwarder-io"
        )
        self.successes = SuccessBatches(database=self.database)
        self.in_flight: dict[int, InFlight] = {}
        self.wake = asyncio.Event()
        self.stopping = asyncio.Event()
        self.claimed = 0
        self.calling = 0  # entries whose upstream call is not over: what FORWARD_CONCURRENCY bounds
        self.max_in_flight = 0
        self.last_claim = 0.0

    async def run(self) -> DrainStats:
        started = time.monotonic()
        background: list[asyncio.Task] = []
        try:
            async with (
                aihubmix_client_from_settings(calls_in_flight=self.concurrency) as client,
                safe_get_client(timeout_seconds=settings.OUTPUT_FETCH_DEADLINE_SECONDS) as downloads,
            ):
                self.pipeline = Pipeline(
                    database=self.database, successes=self.successes, client=client, downloads=downloads,
                    io_threads=self.io_threads, verify_threads=self.verify_threads, call_over=self._call_over,
                    answer_budget=AnswerBudget(settings.FORWARD_ANSWER_BUDGET_MB * 1024 * 1024),
                )
                background.append(asyncio.create_task(self.successes.run()))
                background.append(asyncio.create_task(self._renew_loop()))
                background.append(asyncio.create_task(self._cancel_poll_loop()))
                background.append(asyncio.create_task(self._deadline_loop()))
                if not self.until_idle:
                    background.append(asyncio.create_task(self._listen_loop()))
                    background.append(asyncio.create_task(self._reap_loop()))
                await self._claim_loop()
                await self._finish_in_flight()
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await self.database.close()
            self.io_threads.shutdown(wait=True)
            self.verify_threads.shutdown(wait=True)
        return DrainStats(claimed=self.claimed, max_in_flight=self.max_in_flight, seconds=time.monotonic() - started)

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    # --- claims and slots -------------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        idle_since: float | None = None
        min_batch = max(1, self.concurrency // 20)
        while not self.stopping.is_set():
            self.wake.clear()
            # A slot is an upstream call: one whose answer is being verified, stored and settled no longer holds
            # one, so the next call starts meanwhile. Those are bounded too (by the concurrency again), which
            # bounds the spooled outputs held at once.
            free = min(self.concurrency - self.calling, 2 * self.concurrency - len(self.in_flight))
            # Coalesce refills: claim a batch rather than one row per finished call, unless the loop is idle
            # or the last claim was a while ago (slots stay ≥ 95 % full).
            due_for_claim = free >= min_batch or not self.in_flight or time.monotonic() - self.last_claim > 0.1
            claims: list[ClaimedGeneration] = []
            if free > 0 and due_for_claim:
                try:
                    claims = await self.database.run(
                        generation_claim_batch, limit=free, lease_seconds=self.lease_seconds
                    )
                except DB_ERRORS:
                    await self._sleep_or_wake(min(1.0, settings.FORWARD_DB_RETRY_MAX_SECONDS))
                    continue
                self.last_claim = time.monotonic()
                for claim in claims:
                    self._start(claim)
            if self.until_idle and not self.in_flight and not claims:
                # Nothing to do: stop, unless a retry becomes due shortly (wait for it rather than the reaper).
                try:
                    due = await self.database.run(generation_next_due_in_seconds)
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
        entry.task = asyncio.create_task(self.pipeline.run(entry))
        entry.task.add_done_callback(lambda _task, gid=claim.id: self._done(gid))
        self.in_flight[claim.id] = entry
        self.claimed += 1
        self.calling += 1
        self.max_in_flight = max(self.max_in_flight, self.calling)

    def _call_over(self, entry: InFlight) -> None:
        """The upstream call is over (answered, failed or abandoned): its slot is free for the next claim."""
        if entry.calling:
            entry.calling = False
            self.calling -= 1
            self.wake.set()

    def _done(self, generation_id: int) -> None:
        entry = self.in_flight.pop(generation_id, None)
        if entry is not None:
            self._call_over(entry)
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
            ids = [gid for gid, entry in self.in_flight.items() if entry.calling]
            if not ids:
                continue
            with contextlib.suppress(*DB_ERRORS):
                for gid in await self.database.run(generations_cancel_requested, ids=ids):
                    self._cancel(gid, reason="canceled")

    async def _deadline_loop(self) -> None:
        """`Cancel-After` deadlines: expired queued generations canceled (free) within about
        FORWARD_DEADLINE_POLL_SECONDS, running ones stopped at once when they are ours (others' forwarders get the
        cancel notice). Every forwarder sweeps; SKIP LOCKED keeps them out of each other's way."""
        while True:
            await asyncio.sleep(settings.FORWARD_DEADLINE_POLL_SECONDS)
            try:
                sweep = await self.database.run(generations_deadlines_enforce)
            except DB_ERRORS:
                continue
            for gid in sweep.running:
                self._cancel(gid, reason="canceled")
            if sweep.canceled or sweep.running:
                logger.info("forwarder.deadlines", canceled=len(sweep.canceled), running=len(sweep.running))

    def _cancel(self, generation_id: int, *, reason: str) -> None:
        entry = self.in_flight.get(generation_id)
        if entry is None or not entry.calling or entry.task is None or entry.cancel_reason:
            return
        entry.cancel_reason = reason
        entry.task.cancel()

    async def _renew_loop(self) -> None:
        interval = max(self.lease_seconds / 3, 0.2)
        while True:
            await asyncio.sleep(interval if self.database.down_since is None else 0.25)
            entries = list(self.in_flight.values())
            if not entries:
                continue
            renewed_at = time.monotonic()
            try:
                held = await self.database.run(
                    generation_leases_renew, claims=[e.claim for e in entries], lease_seconds=self.lease_seconds
                )
            except DB_ERRORS:
                continue  # retried on the short interval until the database answers again
            for entry in entries:
                if entry.claim.id in held:
                    entry.lease_deadline = renewed_at + self.lease_seconds - 1.0
                elif entry.claim.id in self.in_flight:
                    # Reaped meanwhile (requeued, perhaps claimed elsewhere): this call's result can no longer be recorded.
                    self._cancel(entry.claim.id, reason="lease_lost")

    async def _reap_loop(self) -> None:
        while True:
            await asyncio.sleep(settings.FORWARD_REAP_SECONDS * random.uniform(0.8, 1.2))
            try:
                result = await self.database.run(generations_reap)
            except DB_ERRORS:
                continue
            if result.requeued or result.failed:
                logger.info("forwarder.reaped", requeued=result.requeued, failed=result.failed)
                self.wake.set()


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
    """Still needed although nothing here imports the API: a webhook payload carries its images' signed download
    URLs, which (filesystem storage) are `reverse()`d, and the first reverse builds Django's index of the whole
    URLconf — importing every URL module and view, DRF included, and holding the GIL ~150 ms (py-spy) — just as the
    first answers settle and the next calls go out. Built at start-up instead."""
    get_resolver().reverse_dict  # noqa: B018 - reading the property builds it


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # not built for this platform: the standard loop
        return None
    return uvloop.new_event_loop
