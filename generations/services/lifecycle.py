"""State changes of a generation after submit: claim, settle, retry, fail, cancel, reap.

Each function is one short transaction. None of them is ever called while an upstream request is open: the
forwarder calls them between upstream steps. Worker-side writes are guarded by the lease token, so a worker whose
lease was taken over (reaped, re-claimed elsewhere) cannot settle a generation a second time.
"""

import json
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from billing.models import LedgerEntry
from billing.services.ledger import Capture, billing_capture, billing_capture_many, billing_release
from generations.catalog.lookup import ModelRetired, catalog_entry_find
from generations.catalog.upstream_body import stored_interface
from generations.models import Generation, GenerationImage
from generations.notifications import (
    notify_generation_cancel,
    notify_generation_finished,
    notify_generations_finished,
    notify_work_available,
)
from generations.services.claims import claim_candidates
from generations.services.events import generation_final_event_publish, generation_final_events_publish
from generations.services.moderation import ReviewDecision, initial_reviews
from project import errors


class GenerationNotCancelable(errors.Conflict):
    code = "generation_not_cancelable"
    message = "The generation has already finished."


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


@dataclass(frozen=True)
class StoredOutput:
    index: int
    storage_key: str
    content_type: str
    width: int
    height: int
    byte_size: int
    sha256: str
    revised_prompt: str


@dataclass(frozen=True)
class Failure:
    code: str
    message: str
    upstream_status: int | None = None
    trace_id: str | None = None
    # An upstream answer we could not read, kept for staff.
    upstream_response: str = ""


def _claimable(now):
    return Generation.objects.filter(status=Generation.Status.QUEUED).filter(
        Q(not_before__isnull=True) | Q(not_before__lte=now)
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
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            attempts=F("attempts") + 1,
            started_at=Coalesce(F("started_at"), now),
        )
        rows = list(
            Generation.objects.filter(id__in=ids, lease_token=token)
            .select_related("tenant")
            .prefetch_related("input_images")
        )
        rows = _retired_failed(rows)
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
        _fail(row, Failure(code=ModelRetired.code, message=f"{entry.id} was retired{when} before this generation started.{hint}"))
    return sendable


def generation_next_due_in_seconds() -> float | None:
    """Seconds until the earliest queued generation becomes claimable (0 if one already is), or None."""
    now = timezone.now()
    queued = Generation.objects.filter(status=Generation.Status.QUEUED)
    if queued.filter(Q(not_before__isnull=True) | Q(not_before__lte=now)).exists():
        return 0.0
    earliest = queued.order_by("not_before").values_list("not_before", flat=True).first()
    return None if earliest is None else (earliest - now).total_seconds()


def generation_leases_renew(*, claims: list[ClaimedGeneration], lease_seconds: int) -> set[int]:
    """Extend the leases this worker still holds; returns the ids still held. Every id and token given belongs
    to this worker, so one statement covers all its claim batches."""
    if not claims:
        return set()
    expires_at = timezone.now() + timedelta(seconds=lease_seconds)
    queryset = Generation.objects.filter(
        id__in=[claim.id for claim in claims],
        lease_token__in={claim.lease_token for claim in claims},
        status=Generation.Status.RUNNING,
    )
    queryset.update(lease_expires_at=expires_at)
    return set(queryset.values_list("id", flat=True))


def _locked_claim(claim: ClaimedGeneration) -> Generation | None:
    return (
        # of=self: locking the joined tenant row too would deadlock with submits (wallet lock, then tenant FK).
        Generation.objects.select_for_update(of=("self",))
        .select_related("tenant")
        .filter(pk=claim.id, lease_token=claim.lease_token, status=Generation.Status.RUNNING)
        .first()
    )


def generation_task_id_record(*, claim: ClaimedGeneration, upstream_task_id: str) -> None:
    Generation.objects.filter(pk=claim.id, lease_token=claim.lease_token).update(upstream_task_id=upstream_task_id)


def _finish(generation: Generation, status: str) -> None:
    generation.status = status
    generation.finished_at = timezone.now()
    generation.lease_token = None
    generation.lease_expires_at = None
    generation.not_before = None
    generation.save()
    generation_final_event_publish(generation)
    notify_generation_finished(generation_id=generation.pk)


_USAGE_KEYS = ("input_tokens", "output_tokens", "total_tokens", "input_tokens_details", "output_tokens_details")


def usage_from_upstream(usage: dict | None) -> dict | None:
    """OpenAI's image `usage` object, keeping only its token counts: the upstream's dict is not ours to echo."""
    if not isinstance(usage, dict):
        return None

    def counts(value: object) -> object:
        if isinstance(value, dict):
            return {str(k): v for k, v in value.items() if isinstance(v, int) and not isinstance(v, bool)}
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    kept = {key: counts(usage[key]) for key in _USAGE_KEYS if key in usage}
    kept = {key: value for key, value in kept.items() if value is not None}
    return kept if "total_tokens" in kept or "input_tokens" in kept else None


def generation_succeed(
    *, claim: ClaimedGeneration, outputs: list[StoredOutput], usage: dict | None = None
) -> Generation | None:
    """Record the stored images and capture exactly what they cost. Returns None if the lease was lost."""
    with transaction.atomic():
        generation = _locked_claim(claim)
        if generation is None:
            return None
        if generation.cancel_requested:
            _settle_canceled_while_running(generation, images_returned=len(outputs))
            return generation
        reviews = initial_reviews(tenant=generation.tenant, images=len(outputs))
        GenerationImage.objects.bulk_create(
            [_image_row(generation, output, review) for output, review in zip(outputs, reviews, strict=True)]
        )
        images = len(outputs)
        capture = billing_capture(
            reference=generation.public_id,
            images=images,
            # Earlier attempts that were lost after sending may each have been charged too: our cost, not theirs.
            upstream_cost_micros=generation.unit_cost_micros * images + _unknown_outcome_cost(generation),
        )
        _record_success(generation, Success(claim=claim, outputs=outputs, usage=usage), capture)
        _finish(generation, Generation.Status.SUCCEEDED)
    return generation


@dataclass(frozen=True)
class Success:
    """One generation of a `generations_succeed` batch."""

    claim: ClaimedGeneration
    outputs: list[StoredOutput]
    usage: dict | None = None


def generations_succeed(*, successes: list[Success]) -> dict[int, Generation | None]:
    """`generation_succeed` for many generations in ONE transaction and a fixed number of statements (the forwarder
    settles what finished in the last few milliseconds together): the claimed rows locked in one SELECT, every
    image row in one INSERT, the money in `billing_capture_many`, the rows in one UPDATE, every webhook event in
    `webhook_events_publish` and the finished notices in one statement. Same results per generation as
    `generation_succeed` (None: the lease was lost). Any error rolls the whole batch back, so retrying it captures
    nothing twice; the caller settles the members one by one if the batch keeps failing for other reasons than
    the database."""
    if not successes:
        return {}
    results: dict[int, Generation | None] = dict.fromkeys(success.claim.id for success in successes)
    with transaction.atomic():
        locked = {
            row.pk: row
            for row in Generation.objects.select_for_update(of=("self",))
            .select_related("tenant", "api_key")
            .filter(pk__in=list(results), status=Generation.Status.RUNNING)
            .order_by("pk")
        }
        settling: list[tuple[Success, Generation]] = []
        for success in successes:
            generation = locked.get(success.claim.id)
            if generation is None or generation.lease_token != success.claim.lease_token:
                continue
            results[generation.pk] = generation
            if generation.cancel_requested:
                _settle_canceled_while_running(generation, images_returned=len(success.outputs))
            else:
                settling.append((success, generation))
        if not settling:
            return results
        # One read of each tenant's review setting; sampling still draws per image.
        by_tenant: dict[int, list[tuple[Generation, StoredOutput]]] = {}
        for success, generation in settling:
            by_tenant.setdefault(generation.tenant_id, []).extend((generation, output) for output in success.outputs)
        rows = []
        for pairs in by_tenant.values():
            reviews = initial_reviews(tenant=pairs[0][0].tenant, images=len(pairs))
            rows += [_image_row(generation, output, review) for (generation, output), review in zip(pairs, reviews, strict=True)]
        images_of: dict[int, list[GenerationImage]] = {}
        for image in GenerationImage.objects.bulk_create(rows):
            images_of.setdefault(image.generation_id, []).append(image)
        captured = billing_capture_many(
            captures=[
                Capture(
                    reference=generation.public_id,
                    images=len(success.outputs),
                    upstream_cost_micros=generation.unit_cost_micros * len(success.outputs)
                    + _unknown_outcome_cost(generation),
                )
                for success, generation in settling
            ]
        )
        now = timezone.now()
        for success, generation in settling:
            _record_success(generation, success, captured[generation.public_id])
            generation.status = Generation.Status.SUCCEEDED
            generation.finished_at = now
            generation.lease_token = None
            generation.lease_expires_at = None
            generation.not_before = None
            generation.updated_at = now
            # The event renders the images just written: hand them over instead of reading them back.
            generation._prefetched_objects_cache = {"images": sorted(images_of.get(generation.pk, []), key=lambda i: i.index)}
        _succeeded_rows_update([generation for _success, generation in settling], now=now)
        generation_final_events_publish([generation for _success, generation in settling])
        notify_generations_finished(generation_ids=[generation.pk for _success, generation in settling])
    return results


def _succeeded_rows_update(generations: list[Generation], *, now) -> None:
    """Write the settled rows with one UPDATE per distinct outcome (usually one: same price, same n) rather than
    `bulk_update`'s CASE per field and row."""
    groups: dict[tuple, list[int]] = {}
    for generation in generations:
        outcome = (
            generation.charged_micros, generation.upstream_cost_micros, generation.images_returned,
            json.dumps(generation.usage, sort_keys=True),
        )
        groups.setdefault(outcome, []).append(generation.pk)
    for (charged, cost, images, usage), ids in groups.items():
        Generation.objects.filter(pk__in=ids).update(
            status=Generation.Status.SUCCEEDED, finished_at=now, lease_token=None, lease_expires_at=None,
            not_before=None, charged_micros=charged, upstream_cost_micros=cost, images_returned=images,
            usage=json.loads(usage), error_code="", error_message="", updated_at=now,
        )


def _image_row(generation: Generation, output: StoredOutput, review: ReviewDecision) -> GenerationImage:
    return GenerationImage(
        generation=generation,
        index=output.index,
        storage_key=output.storage_key,
        content_type=output.content_type,
        width=output.width,
        height=output.height,
        byte_size=output.byte_size,
        sha256=output.sha256,
        revised_prompt=output.revised_prompt,
        **review.image_fields(),
    )


def _record_success(generation: Generation, success: Success, capture: LedgerEntry | None) -> None:
    # The ledger is the truth (it caps at the hold); the generation row mirrors it.
    if capture is not None:
        generation.charged_micros = capture.amount_micros if capture.kind == "capture" else 0
        generation.upstream_cost_micros = capture.cost_micros
    generation.images_returned = len(success.outputs)
    generation.usage = usage_from_upstream(success.usage)
    generation.error_code = ""
    generation.error_message = ""


def _settle_canceled_while_running(generation: Generation, *, images_returned: int) -> None:
    """Canceled after the upstream call went out: the tenant pays what the upstream charged us, no margin."""
    if images_returned:
        upstream_cost = generation.unit_cost_micros * images_returned
        # No image reaches the tenant, so the capture counts none (quotas, usage and statements count delivered
        # images); statements show the amount on its own "canceled while running" line.
        entry = billing_capture(
            reference=generation.public_id,
            images=0,
            amount_micros=upstream_cost,
            upstream_cost_micros=upstream_cost + _unknown_outcome_cost(generation),
            note=f"canceled while running; the upstream produced {images_returned} image(s)",
        )
    else:
        entry = billing_release(
            reference=generation.public_id, upstream_cost_micros=_unknown_outcome_cost(generation), reason="canceled"
        )
    # The ledger caps a capture at the hold: the row mirrors what was really recorded.
    if entry is not None:
        generation.charged_micros = entry.amount_micros if entry.kind == "capture" else 0
        generation.upstream_cost_micros = entry.cost_micros
    generation.images_returned = 0
    generation.error_code = "canceled"
    generation.error_message = "Canceled while running; charged the upstream cost of the images it produced."
    _finish(generation, Generation.Status.CANCELED)


def generation_settle_canceled(
    *, claim: ClaimedGeneration, images_returned: int, call_abandoned: bool = False
) -> Generation | None:
    """Settle a cancel. `call_abandoned`: the forwarder stopped waiting for a call already sent, which the upstream
    may still charge us for; the tenant pays nothing for it."""
    with transaction.atomic():
        generation = _locked_claim(claim)
        if generation is None:
            return None
        if call_abandoned:
            generation.unknown_outcomes += 1
        _settle_canceled_while_running(generation, images_returned=images_returned)
    return generation


def _fail(generation: Generation, failure: Failure, *, answered_cost_micros: int = 0) -> None:
    """`answered_cost_micros`: what the last (answered) call cost us; lost calls are added from the row."""
    upstream_cost_micros = answered_cost_micros + _unknown_outcome_cost(generation)
    billing_release(reference=generation.public_id, upstream_cost_micros=upstream_cost_micros, reason=failure.code)
    generation.error_code = failure.code
    generation.error_message = failure.message[:2000]
    generation.upstream_status = failure.upstream_status
    generation.upstream_trace_id = (failure.trace_id or "")[:200]
    generation.upstream_response = failure.upstream_response
    generation.charged_micros = 0
    generation.upstream_cost_micros = upstream_cost_micros
    _finish(generation, Generation.Status.FAILED)


def generation_fail(*, claim: ClaimedGeneration, failure: Failure, upstream_cost_micros: int = 0) -> Generation | None:
    """A permanent failure: the tenant's hold is released in full; what the upstream charged us is recorded."""
    with transaction.atomic():
        generation = _locked_claim(claim)
        if generation is None:
            return None
        if generation.cancel_requested:
            _settle_canceled_while_running(generation, images_returned=0)
            return generation
        _fail(generation, failure, answered_cost_micros=upstream_cost_micros)
    return generation


def generation_retry_later(
    *, claim: ClaimedGeneration, failure: Failure, delay_seconds: float, unknown_outcome: bool = False
) -> Generation | None:
    """A transient failure: back to the queue after `delay_seconds`, or failed once attempts are spent."""
    with transaction.atomic():
        generation = _locked_claim(claim)
        if generation is None:
            return None
        if unknown_outcome:
            generation.unknown_outcomes += 1
        if generation.cancel_requested:
            _settle_canceled_while_running(generation, images_returned=0)
            return generation
        if generation.attempts >= generation.max_attempts:
            _fail(generation, failure)
            return generation
        generation.status = Generation.Status.QUEUED
        generation.not_before = timezone.now() + timedelta(seconds=delay_seconds)
        generation.lease_token = None
        generation.lease_expires_at = None
        generation.error_code = failure.code
        generation.error_message = failure.message[:2000]
        generation.upstream_status = failure.upstream_status
        generation.upstream_trace_id = (failure.trace_id or "")[:200]
        generation.save()
    return generation


def _unknown_outcome_cost(generation: Generation) -> int:
    """Calls that timed out after sending may each have been charged in full by the upstream."""
    return generation.unknown_outcomes * generation.n * generation.unit_cost_micros


def generation_cancel(*, generation: Generation) -> Generation:
    """Queued → canceled and free. Running → cancel requested; the forwarder settles it. Final → 409."""
    with transaction.atomic():
        locked = Generation.objects.select_for_update(of=("self",)).select_related("tenant").get(pk=generation.pk)
        if locked.status == Generation.Status.CANCELED or (
            locked.status == Generation.Status.RUNNING and locked.cancel_requested
        ):
            return locked
        if locked.is_final:
            raise GenerationNotCancelable()
        locked.cancel_requested = True
        if locked.status == Generation.Status.QUEUED:
            # Queued again after an unknown outcome, the upstream may already have charged us: record it.
            billing_release(
                reference=locked.public_id, upstream_cost_micros=_unknown_outcome_cost(locked), reason="canceled"
            )
            locked.charged_micros = 0
            locked.upstream_cost_micros = _unknown_outcome_cost(locked)
            locked.error_code = "canceled"
            locked.error_message = "Canceled before it ran; nothing was charged."
            _finish(locked, Generation.Status.CANCELED)
        else:
            locked.save(update_fields=["cancel_requested", "updated_at"])
            # The forwarder running it stops waiting on the upstream at once (it also polls, for lost notices).
            notify_generation_cancel(generation_id=locked.pk)
    return locked


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
        expired = Generation.objects.filter(status=Generation.Status.RUNNING, lease_expires_at__lt=now)
        if connection.vendor == "postgresql":
            expired = expired.select_for_update(skip_locked=True, of=("self",))
        for generation in expired.select_related("tenant")[:500]:
            # The worker died mid-call: the upstream may have generated (and charged) without us hearing back.
            generation.unknown_outcomes += 1
            if generation.cancel_requested:
                _settle_canceled_while_running(generation, images_returned=0)
                failed += 1
            elif generation.attempts >= generation.max_attempts:
                _fail(generation, Failure("worker_lost", "The worker processing this generation stopped responding."))
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

