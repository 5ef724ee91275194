"""Leases: the forwarder claims queued generations under a lease, renews it while the call runs, records the
upstream task id under it, and the reaper requeues (or fails) generations whose lease ran out in a dead worker.

Each function is one short transaction. A lease is a token on the row: every write a worker makes afterwards
(`claim_lock`, used by the settlements) checks it, so a worker whose lease was taken over (reaped, claimed
elsewhere) can no longer write the generation.
"""

import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce, Now
from django.utils import timezone

from generations.catalog.lookup import ModelRetired, catalog_entry_find
from generations.catalog.upstream_body import stored_interface
from generations.models import Generation
from generations.notifications import notify_work_available
from generations.services.claims import claim_candidates
from generations.services.events import generation_started_events_publish
from generations.services.finish import Failure, generation_cancel_finish, generation_fail_finish


@dataclass(frozen=True)
class StoredInput:
    storage_key: str
    content_type: str
    role: str


@dataclass(frozen=True)
class ClaimedGeneration:
    id: int
    public_id: str
    lease_token: uuid.UUID
    model_id: str
    interface: str
    operation: str
    n: int
    upstream_body: dict
    attempts: int
    max_attempts: int
    unit_cost_micros: int
    tenant_slug: str
    created_at_path: str
    inputs: list[StoredInput] = field(default_factory=list)


def _lease_clock():
    """Leases are set and compared on the database's clock, the one clock every host shares: a forwarder host's
    clock may be skewed, and a claim that reached the database late (its host cut off) must not start with a lease
    already spent. SQLite is one machine: the process clock."""
    return Now() if connection.vendor == "postgresql" else timezone.now()


def _claimable(now):
    return Generation.objects.filter(status=Generation.Status.QUEUED).filter(
        Q(not_before__isnull=True) | Q(not_before__lte=now), Q(deadline_at__isnull=True) | Q(deadline_at__gt=now)
    )


def generation_claim_batch(*, limit: int, lease_seconds: int) -> list[ClaimedGeneration]:
    """Lease up to `limit` queued generations, round-robin between tenants and within each tenant's running cap
    (generations.services.claims). SKIP LOCKED steps over rows a cancel is locking right now."""
    if limit <= 0:
        return []
    now = timezone.now()
    token = uuid.uuid4()
    with transaction.atomic():
        picked = claim_candidates(limit=limit, now=now)
        if not picked:
            return []
        candidates = Generation.objects.filter(id__in=picked, status=Generation.Status.QUEUED)
        if connection.vendor == "postgresql":
            candidates = candidates.select_for_update(skip_locked=True, of=("self",))
        ids = list(candidates.values_list("id", flat=True))
        if not ids:
            return []
        Generation.objects.filter(id__in=ids, status=Generation.Status.QUEUED).update(
            status=Generation.Status.RUNNING,
            lease_token=token,
            lease_expires_at=_lease_clock() + timedelta(seconds=lease_seconds),
            attempts=F("attempts") + 1,
            started_at=Coalesce(F("started_at"), now),
        )
        rows = list(
            Generation.objects.filter(id__in=ids, lease_token=token)
            .select_related("tenant", "api_key")  # api_key: the started event's rendering names it
            .prefetch_related("input_images")
        )
        rows = _retired_failed(rows)
        # The `generation.started` event, in the transaction that marks them running (the outbox commits with it);
        # once per generation: a retry's claim keeps the first `started_at`.
        generation_started_events_publish(generations=[row for row in rows if row.started_at == now])
    return [
        ClaimedGeneration(
            id=row.id,
            public_id=row.public_id,
            lease_token=token,
            model_id=row.model_id,
            interface=row.upstream_interface
            or stored_interface(model_id=row.model_id, operation=row.operation, body=row.upstream_body),
            operation=row.operation,
            n=row.n,
            upstream_body=row.upstream_body,
            attempts=row.attempts,
            max_attempts=row.max_attempts,
            unit_cost_micros=row.unit_cost_micros,
            tenant_slug=row.tenant.slug,
            created_at_path=f"{row.created_at:%Y}/{row.created_at:%m}",
            inputs=[StoredInput(i.storage_key, i.content_type, i.role) for i in row.input_images.all()],
        )
        for row in rows
    ]


def _retired_failed(rows: list[Generation]) -> list[Generation]:
    """Fails (and releases) the claimed generations whose model retired while they waited, so they are never sent:
    the vendor no longer serves the model and AIHubMix bills a call once sent. Returns the others."""
    sendable = []
    for row in rows:
        entry = catalog_entry_find(row.model_id, enabled_only=False)
        if entry is None or entry.status != "retired":
            sendable.append(row)
            continue
        when = f" on {entry.shutdown_at:%Y-%m-%d}" if entry.shutdown_at else ""
        hint = f" Use {entry.replacement} instead." if entry.replacement else ""
        message = f"{entry.id} was retired{when} before this generation started.{hint}"
        generation_fail_finish(generation=row, failure=Failure(code=ModelRetired.code, message=message))
    return sendable


def generation_next_due_in_seconds() -> float | None:
    """Seconds until the earliest queued generation becomes claimable (0 if one already is), or None."""
    now = timezone.now()
    queued = Generation.objects.filter(status=Generation.Status.QUEUED).filter(
        Q(deadline_at__isnull=True) | Q(deadline_at__gt=now)
    )
    if queued.filter(Q(not_before__isnull=True) | Q(not_before__lte=now)).exists():
        return 0.0
    earliest = queued.order_by("not_before").values_list("not_before", flat=True).first()
    return None if earliest is None else (earliest - now).total_seconds()


def generation_leases_renew(*, claims: list[ClaimedGeneration], lease_seconds: int) -> set[int]:
    """Extend the leases this worker still holds; returns the ids still held. Every id and token given belongs
    to this worker, so one statement covers all its claim batches.

    A row locked right now (a settlement writing it, itself perhaps waiting for a wallet another host locks, or a
    cancel) is not waited for: renewing behind it let every other lease of the worker run out meanwhile. It stays
    held while locked (the reaper skips locked rows too) and counts as held if it is still ours as last committed.
    """
    if not claims:
        return set()
    expires_at = _lease_clock() + timedelta(seconds=lease_seconds)
    queryset = Generation.objects.filter(
        id__in=[claim.id for claim in claims],
        lease_token__in={claim.lease_token for claim in claims},
        status=Generation.Status.RUNNING,
    )
    if connection.vendor == "postgresql":
        with transaction.atomic():
            free = list(queryset.select_for_update(skip_locked=True, of=("self",)).values_list("id", flat=True))
            Generation.objects.filter(id__in=free).update(lease_expires_at=expires_at)
    else:
        queryset.update(lease_expires_at=expires_at)
    return set(queryset.values_list("id", flat=True))


def claim_lock(*, claim: ClaimedGeneration) -> Generation | None:
    """The claimed row, locked, if this claim's lease still holds (else None: nothing may be written)."""
    return (
        # of=self: locking the joined tenant row too would deadlock with submits (wallet lock, then tenant FK).
        Generation.objects.select_for_update(of=("self",))
        .select_related("tenant")
        .filter(pk=claim.id, lease_token=claim.lease_token, status=Generation.Status.RUNNING)
        .first()
    )


def generation_task_id_record(*, claim: ClaimedGeneration, upstream_task_id: str) -> None:
    Generation.objects.filter(pk=claim.id, lease_token=claim.lease_token).update(upstream_task_id=upstream_task_id)


@dataclass(frozen=True)
class ReapResult:
    requeued: int
    failed: int
    woken: bool


def generations_reap() -> ReapResult:
    """Requeue (or fail, once attempts are spent) generations whose worker lease expired, and wake the forwarder
    when queued work is claimable but nothing is draining it (a lost wake-up)."""
    now = timezone.now()
    requeued = failed = 0
    with transaction.atomic():
        expired = Generation.objects.filter(status=Generation.Status.RUNNING, lease_expires_at__lt=_lease_clock())
        if connection.vendor == "postgresql":
            expired = expired.select_for_update(skip_locked=True, of=("self",))
        for generation in expired.select_related("tenant")[:500]:
            # The worker died mid-call: the upstream may have generated (and charged) without us hearing back.
            generation.unknown_outcomes += 1
            if generation.cancel_requested:
                generation_cancel_finish(generation=generation, images_returned=0)
                failed += 1
            elif generation.attempts >= generation.max_attempts:
                generation_fail_finish(
                    generation=generation,
                    failure=Failure("worker_lost", "The worker processing this generation stopped responding."),
                )
                failed += 1
            else:
                generation.status = Generation.Status.QUEUED
                generation.lease_token = None
                generation.lease_expires_at = None
                generation.not_before = now
                generation.error_code = "worker_lost"
                generation.error_message = "The worker processing this generation stopped responding; retrying."
                generation.save()
                requeued += 1
        woken = requeued > 0 or _claimable(now).exists()
        if woken:
            # Requeued work, or work nobody picked up (a lost wake-up): nudge the forwarders.
            notify_work_available()
    return ReapResult(requeued=requeued, failed=failed, woken=woken)
