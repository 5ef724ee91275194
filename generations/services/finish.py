"""Putting a generation in a final state (succeeded, failed, canceled): the one place the final fields are written,
its webhook event published and its "finished" notice sent.

Called inside the transaction of the service that decided the outcome (a settlement, a cancel, the reaper), with
the generation's row locked. `unknown_outcome_cost` is the money rule every final state shares: calls that may have
reached the upstream without an answer (timeouts after sending, killed forwarders, abandoned calls) are recorded as
our upstream cost, never charged to the tenant.
"""

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from billing.services.ledger import billing_capture, billing_release
from generations.models import Generation
from generations.notifications import notify_generations_finished
from generations.services.events import generation_final_events_publish
from generations.services.wallet_alerts import wallet_alerts_publish

# A cancel at the generation's `Cancel-After` deadline (services/deadlines.py) rather than the tenant's request.
DEADLINE_EXCEEDED = "deadline_exceeded"

# What every final state clears: the lease (no worker holds it any more) and the retry time.
_CLEARED_ON_FINISH = ("lease_token", "lease_expires_at", "not_before")
# Every field `generation_final_fields_set` writes (a batch's UPDATE lists them).
FINAL_FIELDS = ("status", "finished_at", "updated_at", *_CLEARED_ON_FINISH)


@dataclass(frozen=True)
class Failure:
    code: str
    message: str
    upstream_status: int | None = None
    trace_id: str | None = None
    # An upstream answer we could not read, kept for staff.
    upstream_response: str = ""


def unknown_outcome_cost(generation: Generation) -> int:
    """Calls that timed out after sending may each have been charged in full by the upstream."""
    return generation.unknown_outcomes * generation.n * generation.unit_cost_micros


def generation_final_fields_set(*, generation: Generation, status: str, now: datetime) -> None:
    """Set the final state's fields in memory (the caller writes the row: `save()`, or one UPDATE for a batch)."""
    generation.status = status
    generation.finished_at = now
    generation.updated_at = now
    for name in _CLEARED_ON_FINISH:
        setattr(generation, name, None)


def generations_finished(*, generations: list[Generation], images_of: dict | None = None) -> None:
    """After the rows are written, in the same transaction: their webhook events and "finished" notices (the
    notice is delivered at commit, so a waiting client re-reads a committed row)."""
    generation_final_events_publish(generations=generations, images_of=images_of)
    notify_generations_finished(generation_ids=[generation.pk for generation in generations])


def generation_finish(*, generation: Generation, status: str) -> None:
    generation_final_fields_set(generation=generation, status=status, now=timezone.now())
    generation.save()
    generations_finished(generations=[generation])


def generation_fail_finish(*, generation: Generation, failure: Failure, answered_cost_micros: int = 0) -> None:
    """Failed: the tenant's hold released in full. `answered_cost_micros`: what the last (answered) call cost us;
    lost calls are added from the row."""
    upstream_cost_micros = answered_cost_micros + unknown_outcome_cost(generation)
    billing_release(reference=generation.public_id, upstream_cost_micros=upstream_cost_micros, reason=failure.code)
    generation.error_code = failure.code
    generation.error_message = failure.message[:2000]
    generation.upstream_status = failure.upstream_status
    generation.upstream_trace_id = (failure.trace_id or "")[:200]
    generation.upstream_response = failure.upstream_response
    generation.charged_micros = 0
    generation.upstream_cost_micros = upstream_cost_micros
    generation_finish(generation=generation, status=Generation.Status.FAILED)


def generation_cancel_finish(*, generation: Generation, images_returned: int) -> None:
    """Canceled after the upstream call went out: the tenant pays what the upstream charged us, no margin."""
    if images_returned:
        upstream_cost = generation.unit_cost_micros * images_returned
        # No image reaches the tenant, so the capture counts none (quotas, usage and statements count delivered
        # images); statements show the amount on its own "canceled while running" line.
        entry = billing_capture(
            reference=generation.public_id,
            images=0,
            amount_micros=upstream_cost,
            upstream_cost_micros=upstream_cost + unknown_outcome_cost(generation),
            note=f"canceled while running; the upstream produced {images_returned} image(s)",
        )
        wallet_alerts_publish(tenant_ids=[generation.tenant_id])
    else:
        entry = billing_release(
            reference=generation.public_id, upstream_cost_micros=unknown_outcome_cost(generation), reason="canceled"
        )
    # The ledger caps a capture at the hold: the row mirrors what was really recorded.
    if entry is not None:
        generation.charged_micros = entry.amount_micros if entry.kind == "capture" else 0
        generation.upstream_cost_micros = entry.cost_micros
    generation.images_returned = 0
    # The deadline sweep marks the cancel it requests with its code; any other cancel is the tenant's.
    at_deadline = generation.error_code == DEADLINE_EXCEEDED
    generation.error_code = DEADLINE_EXCEEDED if at_deadline else "canceled"
    generation.error_message = (
        "Canceled at its Cancel-After deadline while running" if at_deadline else "Canceled while running"
    ) + "; charged the upstream cost of the images it produced."
    generation_finish(generation=generation, status=Generation.Status.CANCELED)
