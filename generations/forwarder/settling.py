"""The batched settlement of successes: answered calls whose images are stored queue here, and one coroutine settles
whatever finished within FORWARD_SETTLE_BATCH_SECONDS of the first (at most FORWARD_SETTLE_BATCH_MAX, and whatever
finishes while a batch is being written) in one transaction of a few statements (`generations_succeed`), instead of
a dozen statements and a round trip through the database pool per generation.
"""

import asyncio
import time
from dataclasses import dataclass

import structlog
from django.conf import settings

from generations.forwarder.database import DB_ERRORS, Database, Leased, LeaseExpired
from generations.models import Generation
from generations.services.settle import Success, generations_succeed

logger = structlog.get_logger(__name__)


@dataclass
class PendingSuccess:
    lease: Leased
    success: Success
    settled: asyncio.Future  # the Generation (None: lease lost), or LeaseExpired / the member's own error


class SuccessBatches:
    def __init__(self, *, database: Database) -> None:
        self.database = database
        self.pending: list[PendingSuccess] = []
        self.waiting = asyncio.Event()

    async def settle(self, lease: Leased, success: Success) -> Generation | None:
        """Queue a success and wait for its batch: the Generation (`succeeded`, or `canceled` if a cancel was
        requested meanwhile), None if the lease was lost; `LeaseExpired` if the database stayed away too long."""
        pending = PendingSuccess(lease=lease, success=success, settled=asyncio.get_running_loop().create_future())
        self.pending.append(pending)
        self.waiting.set()
        # Shielded like every leased write: a cancel or shutdown never abandons a settlement half way.
        return await asyncio.shield(pending.settled)

    async def run(self) -> None:
        while True:
            await self.waiting.wait()
            await asyncio.sleep(settings.FORWARD_SETTLE_BATCH_SECONDS)
            size = settings.FORWARD_SETTLE_BATCH_MAX
            batch, self.pending = self.pending[:size], self.pending[size:]
            if not self.pending:
                self.waiting.clear()
            await self._batch_settle(batch)

    async def _batch_settle(self, batch: list[PendingSuccess]) -> None:
        while batch:
            try:
                # Retried through database errors (the batch is one transaction: nothing is captured twice) until
                # the first member's lease runs out; that member then gives up and the others go on.
                results = await self.database.run(
                    generations_succeed, until=min(p.lease.lease_deadline for p in batch),
                    successes=[p.success for p in batch],
                )
            except DB_ERRORS:
                first = min(batch, key=lambda p: p.lease.lease_deadline)
                soon = time.monotonic() + settings.FORWARD_DB_RETRY_MAX_SECONDS
                expired = [p for p in batch if p is first or p.lease.lease_deadline <= soon]
                for pending in expired:
                    pending.settled.set_exception(LeaseExpired())
                batch = [p for p in batch if p not in expired]
                continue
            except Exception as error:
                if len(batch) == 1:
                    batch[0].settled.set_exception(error)
                    return
                # One member's problem (a bug, a missing hold) must not hold back the others: settle each as a
                # batch of one, so only that one fails.
                logger.exception("forwarder.batch_settle_failed", size=len(batch))
                await asyncio.gather(*(self._alone_settle(pending) for pending in batch))
                return
            for pending in batch:
                pending.settled.set_result(results[pending.success.claim.id])
            return

    async def _alone_settle(self, pending: PendingSuccess) -> None:
        try:
            results = await self.database.run(
                generations_succeed, until=pending.lease.lease_deadline, successes=[pending.success]
            )
        except DB_ERRORS:
            pending.settled.set_exception(LeaseExpired())
        except Exception as error:
            pending.settled.set_exception(error)
        else:
            pending.settled.set_result(results[pending.success.claim.id])
