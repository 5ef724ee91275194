"""Cancels: a tenant's request (`generation_cancel`), and the forwarder's settlement of a call it stopped because
of one (`generation_settle_canceled`).

Queued → canceled at once, the hold released, free. Running → cancel requested and the forwarder told; the call's
settlement (whichever outcome the forwarder reports), or the reaper if the forwarder died, then finishes it
`canceled`, and the tenant pays what the upstream charged us for images it produced, no margin.
"""

from django.db import transaction

from billing.services.ledger import billing_release
from generations.models import Generation
from generations.notifications import notify_generation_cancel
from generations.services.finish import generation_cancel_finish, generation_finish, unknown_outcome_cost
from generations.services.leases import ClaimedGeneration, claim_lock
from project import errors


class GenerationNotCancelable(errors.Conflict):
    code = "generation_not_cancelable"
    message = "The generation has already finished."


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
                reference=locked.public_id, upstream_cost_micros=unknown_outcome_cost(locked), reason="canceled"
            )
            locked.charged_micros = 0
            locked.upstream_cost_micros = unknown_outcome_cost(locked)
            locked.error_code = "canceled"
            locked.error_message = "Canceled before it ran; nothing was charged."
            generation_finish(generation=locked, status=Generation.Status.CANCELED)
        else:
            locked.save(update_fields=["cancel_requested", "updated_at"])
            # The forwarder running it stops waiting on the upstream at once (it also polls, for lost notices).
            notify_generation_cancel(generation_id=locked.pk)
    return locked


def generation_settle_canceled(
    *, claim: ClaimedGeneration, images_returned: int = 0, call_abandoned: bool = False
) -> Generation | None:
    """The forwarder stopped the claimed generation's call for a cancel. `call_abandoned`: the call was already
    sent, so the upstream may still charge us for it; the tenant pays nothing for it. None: the lease was lost."""
    with transaction.atomic():
        generation = claim_lock(claim=claim)
        if generation is None:
            return None
        if call_abandoned:
            generation.unknown_outcomes += 1
        generation_cancel_finish(generation=generation, images_returned=images_returned)
    return generation
