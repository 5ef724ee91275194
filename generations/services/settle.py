"""Settlements: the forwarder ends its lease on a generation by recording what the upstream call came to, with its
money, in one transaction under the lease token:

- succeeded (`generations_succeed`, for a batch of 1..N): the stored images, a CAPTURE of exactly what they cost;
- failed (`generation_settle` with a `Settlement` that does not retry): the hold RELEASED in full, what the answered
  call cost us recorded;
- back to the queue after a delay (a `Settlement` that retries; failed instead once its attempts are spent), an
  unknown outcome counted so its possible upstream cost is recorded on the final settlement.

A cancel requested meanwhile turns any of them into `canceled` (the canceled-in-flight settlement itself is
`cancel.generation_settle_canceled`). The rules "this provider error → this settlement, this recorded upstream
cost" are the `settlement_for_*` functions here; the forwarder only reports what happened.
"""

import json
import random
from dataclasses import dataclass, replace
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing.models import LedgerEntry
from billing.selectors.token_prices import token_prices_in_effect, usage_cost_micros
from billing.services.ledger import Capture, billing_capture_many
from generations.images import InvalidOutput
from generations.models import Generation, GenerationImage
from generations.providers import (
    ContentPolicyError,
    MalformedResponse,
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
    UnknownOutcomeError,
)
from generations.services.finish import (
    FINAL_FIELDS,
    Failure,
    generation_cancel_finish,
    generation_fail_finish,
    generation_final_fields_set,
    generations_finished,
    unknown_outcome_cost,
)
from generations.services.leases import ClaimedGeneration, claim_lock
from generations.services.moderation import ReviewDecision, initial_reviews
from generations.services.wallet_alerts import wallet_alerts_publish


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
class Success:
    """An answered call whose images are verified and stored."""

    claim: ClaimedGeneration
    outputs: list[StoredOutput]
    usage: dict | None = None


@dataclass(frozen=True)
class Settlement:
    """How a call that produced no usable image ends."""

    reason: str  # what happened, for the forwarder's log (content_policy, transient_error, no_usable_output, ...)
    failure: Failure
    retry_in_seconds: float | None = None  # None: failed now; else requeued (failed once attempts are spent)
    upstream_cost_micros: int = 0  # what the answered call cost us, recorded when it fails
    unknown_outcome: bool = False  # the call may have reached the upstream without our hearing the result


def retry_delay_seconds(*, attempt: int, retry_after: float | None) -> float:
    """Exponential backoff with full jitter, never sooner than the upstream's Retry-After."""
    ceiling = min(settings.FORWARD_BACKOFF_MAX_SECONDS, settings.FORWARD_BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
    delay = random.uniform(ceiling / 2, ceiling)
    return max(delay, retry_after or 0.0)


def settlement_for_error(*, claim: ClaimedGeneration, error: ProviderError) -> Settlement:
    failure = Failure(code=error.code, message=error.message, upstream_status=error.status, trace_id=error.trace_id)
    if isinstance(error, ContentPolicyError):
        return Settlement("content_policy", replace(failure, code="content_policy_violation"))
    if isinstance(error, MalformedResponse):
        # Delivered and probably charged, but unreadable: failing it (refunding the tenant, recording our loss) is
        # cheaper than paying again for the same misunderstanding. The body is kept for staff.
        return Settlement(
            "unrecognized_response",
            replace(failure, upstream_response=error.body),
            upstream_cost_micros=claim.unit_cost_micros * claim.n,
        )
    if isinstance(error, PermanentProviderError):
        return Settlement("permanent_error", failure)
    if isinstance(error, UnknownOutcomeError):
        delay = retry_delay_seconds(attempt=claim.attempts, retry_after=None)
        return Settlement("unknown_outcome", failure, retry_in_seconds=delay, unknown_outcome=True)
    retry_after = error.retry_after if isinstance(error, TransientProviderError) else None
    delay = retry_delay_seconds(attempt=claim.attempts, retry_after=retry_after)
    return Settlement("transient_error", failure, retry_in_seconds=delay)


def settlement_for_unusable_answer(
    *, claim: ClaimedGeneration, refusals: list[BaseException], images_answered: int, trace_id: str | None
) -> Settlement:
    """The upstream answered (and charged us for at least one image), but no image passed verification."""
    first = refusals[0] if refusals else None
    if isinstance(first, InvalidOutput):
        failure = Failure(first.code, f"The upstream's image was refused: {first.message}.", trace_id=trace_id)
    else:
        failure = Failure("no_output", "The upstream returned no usable images.", trace_id=trace_id)
    return Settlement(
        "no_usable_output", failure, upstream_cost_micros=claim.unit_cost_micros * max(images_answered, 1)
    )


def settlement_after_crash(*, claim: ClaimedGeneration, answered: bool) -> Settlement:
    """An error of ours interrupted the generation: retried. `answered`: the upstream had answered (and charged),
    so the retry is recorded as an unknown outcome."""
    return Settlement(
        "crashed",
        Failure("internal_error", "An internal error interrupted this generation; retrying."),
        retry_in_seconds=retry_delay_seconds(attempt=claim.attempts, retry_after=None),
        unknown_outcome=answered,
    )


def generation_settle(*, claim: ClaimedGeneration, settlement: Settlement) -> Generation | None:
    """Fail or requeue the claimed generation as `settlement` says. None: the lease was lost."""
    with transaction.atomic():
        generation = claim_lock(claim=claim)
        if generation is None:
            return None
        if settlement.unknown_outcome:
            generation.unknown_outcomes += 1
        failure = settlement.failure
        if generation.cancel_requested:
            generation_cancel_finish(generation=generation, images_returned=0)
        elif settlement.retry_in_seconds is None or generation.attempts >= generation.max_attempts:
            generation_fail_finish(
                generation=generation, failure=failure, answered_cost_micros=settlement.upstream_cost_micros
            )
        else:
            generation.status = Generation.Status.QUEUED
            generation.not_before = timezone.now() + timedelta(seconds=settlement.retry_in_seconds)
            generation.lease_token = None
            generation.lease_expires_at = None
            generation.error_code = failure.code
            generation.error_message = failure.message[:2000]
            generation.upstream_status = failure.upstream_status
            generation.upstream_trace_id = (failure.trace_id or "")[:200]
            generation.save()
    return generation


# Everything a success writes on the generation's row.
_SUCCEEDED_FIELDS = (
    *FINAL_FIELDS, "charged_micros", "upstream_cost_micros", "images_returned", "usage", "error_code", "error_message"
)


def generations_succeed(*, successes: list[Success]) -> dict[int, Generation | None]:
    """Settle answered calls whose images are stored, in ONE transaction and a fixed number of statements however
    many there are (the forwarder settles what finished in the last few milliseconds together; one on its own is a
    batch of one): the claimed rows locked in one SELECT, every image row in one INSERT, the money in
    `billing_capture_many` (exactly what the images cost, never above the hold), the rows in one UPDATE per distinct
    outcome, every webhook event and the finished notices in a statement each.

    Per member: the Generation, `succeeded`; `canceled` if a cancel was requested meanwhile (the tenant pays the
    upstream's cost; the caller deletes the stored files); None if its lease was lost. Any error rolls the whole
    batch back, so retrying it captures nothing twice."""
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
        succeeding: list[tuple[Success, Generation]] = []
        for success in successes:
            generation = locked.get(success.claim.id)
            if generation is None or generation.lease_token != success.claim.lease_token:
                continue
            results[generation.pk] = generation
            if generation.cancel_requested:
                generation_cancel_finish(generation=generation, images_returned=len(success.outputs))
            else:
                succeeding.append((success, generation))
        if not succeeding:
            return results
        images_of = _images_create(succeeding)
        actual_costs = _actual_costs(succeeding)
        captured = billing_capture_many(
            captures=[
                Capture(
                    reference=generation.public_id,
                    images=len(success.outputs),
                    # Earlier attempts lost after sending may each have been charged too: our cost, not theirs.
                    upstream_cost_micros=generation.unit_cost_micros * len(success.outputs)
                    + unknown_outcome_cost(generation),
                    upstream_cost_actual_micros=actual_costs.get(generation.pk),
                )
                for success, generation in succeeding
            ]
        )
        now = timezone.now()
        for success, generation in succeeding:
            _success_record(generation, success, captured[generation.public_id])
            generation_final_fields_set(generation=generation, status=Generation.Status.SUCCEEDED, now=now)
        succeeded = [generation for _success, generation in succeeding]
        _rows_update(succeeded, fields=_SUCCEEDED_FIELDS)
        wallet_alerts_publish(tenant_ids={generation.tenant_id for generation in succeeded})
        # The events render the images just written: handed over instead of read back.
        generations_finished(generations=succeeded, images_of=images_of)
    return results


def _actual_costs(succeeding: list[tuple[Success, Generation]]) -> dict[int, int]:
    """What the upstream actually charged for each answer that reported token usage, where the model has token
    prices: the usage × the prices, plus the estimate of earlier attempts lost after sending (their answers never
    came, so their estimate is all that is known). No query when no answer reported usage."""
    with_usage = [(generation, usage) for success, generation in succeeding if (usage := _usage_kept(success.usage))]
    if not with_usage:
        return {}
    prices = token_prices_in_effect(model_ids={generation.model_id for generation, _usage in with_usage})
    costs = {}
    for generation, usage in with_usage:
        cost = usage_cost_micros(usage=usage, price=prices.get(generation.model_id))
        if cost is not None:
            costs[generation.pk] = cost + unknown_outcome_cost(generation)
    return costs


def _images_create(succeeding: list[tuple[Success, Generation]]) -> dict[int, list[GenerationImage]]:
    """Every image row in one INSERT; returns them per generation, in index order."""
    # One read of each tenant's review setting; sampling still draws per image.
    by_tenant: dict[int, list[tuple[Generation, StoredOutput]]] = {}
    for success, generation in succeeding:
        by_tenant.setdefault(generation.tenant_id, []).extend((generation, output) for output in success.outputs)
    rows = []
    for pairs in by_tenant.values():
        reviews = initial_reviews(tenant=pairs[0][0].tenant, images=len(pairs))
        rows += [_image_row(generation, output, review) for (generation, output), review in zip(pairs, reviews, strict=True)]
    images_of: dict[int, list[GenerationImage]] = {}
    for image in GenerationImage.objects.bulk_create(rows):
        images_of.setdefault(image.generation_id, []).append(image)
    for images in images_of.values():
        images.sort(key=lambda image: image.index)
    return images_of


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


def _success_record(generation: Generation, success: Success, capture: LedgerEntry | None) -> None:
    # The ledger is the truth (it caps at the hold); the generation row mirrors it.
    if capture is not None:
        generation.charged_micros = capture.amount_micros if capture.kind == "capture" else 0
        generation.upstream_cost_micros = capture.cost_micros
    generation.images_returned = len(success.outputs)
    generation.usage = _usage_kept(success.usage)
    generation.error_code = ""
    generation.error_message = ""


def _rows_update(generations: list[Generation], *, fields: tuple[str, ...]) -> None:
    """Write `fields` of the rows with one UPDATE per distinct set of values (usually one: same price, same n, same
    moment) rather than `bulk_update`'s CASE per field and row."""
    groups: dict[str, tuple[dict, list[int]]] = {}
    for generation in generations:
        values = {name: getattr(generation, name) for name in fields}
        key = json.dumps(values, sort_keys=True, default=str)
        groups.setdefault(key, (values, []))[1].append(generation.pk)
    for values, ids in groups.values():
        Generation.objects.filter(pk__in=ids).update(**values)


_USAGE_KEYS = ("input_tokens", "output_tokens", "total_tokens", "input_tokens_details", "output_tokens_details")


def _usage_kept(usage: dict | None) -> dict | None:
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
