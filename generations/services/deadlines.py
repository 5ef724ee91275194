"""Deadlines (`Cancel-After`, Replicate's header): reading the duration a client asks for, and enforcing it.

The deadline runs from the submit. A generation not started by then is canceled with code `deadline_exceeded`, its
hold released in full and nothing sent upstream (the claim never takes an expired one: `claims.py`); a running one
is canceled as a tenant's cancel is (the forwarder stops the call; the tenant pays what the upstream charged us for
images it produced), with the same code. The forwarder sweeps every FORWARD_DEADLINE_POLL_SECONDS, the maintenance
reaper every minute as a backstop.
"""

import re
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from billing.services.ledger import billing_release
from generations.models import Generation
from generations.notifications import notify_generation_cancel
from generations.services.finish import DEADLINE_EXCEEDED, generation_finish, unknown_outcome_cost
from project import errors

CANCEL_AFTER_HEADER = "Cancel-After"

# Replicate's duration format: Go-style `<number><unit>` parts (`30s`, `5m`, `1h30m`, `1.5h`, `250ms`), or bare
# seconds (`90`, `2.5`).
_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ms|h|m|s)")
_SECONDS = re.compile(r"\d+(?:\.\d+)?|\.\d+")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


class InvalidCancelAfter(errors.InvalidRequest):
    code = "invalid_cancel_after"
    message = "Cancel-After must be a duration such as 30s, 5m or 1h30m."


def cancel_after_parse(*, value: object, param: str) -> float:
    """The duration in seconds, within CANCEL_AFTER_MIN_SECONDS..CANCEL_AFTER_MAX_SECONDS; else 400 naming `param`."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidCancelAfter(param=param)
    text = str(value).strip().lower()
    if len(text) > 32:
        raise InvalidCancelAfter(param=param)
    if _SECONDS.fullmatch(text):
        seconds = float(text)
    else:
        parts = list(_PART.finditer(text))
        if not parts or "".join(part.group(0) for part in parts) != text:
            raise InvalidCancelAfter(param=param)
        seconds = sum(float(part.group(1)) * _UNIT_SECONDS[part.group(2)] for part in parts)
    low, high = settings.CANCEL_AFTER_MIN_SECONDS, settings.CANCEL_AFTER_MAX_SECONDS
    if not low <= seconds <= high:
        raise InvalidCancelAfter(
            f"Cancel-After must be between {low:g}s and {high:g}s; {value!r} is {seconds:g}s.", param=param
        )
    return seconds


def cancel_after_resolve(*, header: str | None, body: object | None) -> float | None:
    """The deadline a submit asks for: the `Cancel-After` header or `cancel_after` in the body. Both may be given
    only if they say the same (a client that sends two different deadlines has a bug we should not guess about)."""
    from_header = None if header is None else cancel_after_parse(value=header, param=CANCEL_AFTER_HEADER)
    from_body = None if body is None else cancel_after_parse(value=body, param="cancel_after")
    if from_header is not None and from_body is not None and from_header != from_body:
        raise InvalidCancelAfter(
            "The Cancel-After header and cancel_after in the body disagree; send one of them.", param="cancel_after"
        )
    return from_header if from_header is not None else from_body


def deadline_from_now(seconds: float | None):
    return None if seconds is None else timezone.now() + timedelta(seconds=seconds)


@dataclass(frozen=True)
class DeadlineSweep:
    canceled: list[int]  # queued ones, canceled here and released
    running: list[int]  # running ones whose cancel was requested here: their forwarder stops the call


def generations_deadlines_enforce(*, limit: int = 500) -> DeadlineSweep:
    """Cancel queued generations past their deadline (free) and request the cancel of running ones. One short
    transaction; rows another transaction holds (a claim, a settlement) are skipped and found by the next sweep —
    a claim never takes an expired one, a settlement finds the cancel requested or has finished it."""
    now = timezone.now()
    canceled: list[int] = []
    running: list[int] = []
    with transaction.atomic():
        expired = Generation.objects.filter(
            deadline_at__isnull=False,
            deadline_at__lte=now,
            status__in=(Generation.Status.QUEUED, Generation.Status.RUNNING),
            cancel_requested=False,
        ).order_by("deadline_at")
        if connection.vendor == "postgresql":
            expired = expired.select_for_update(skip_locked=True, of=("self",))
        for generation in expired.select_related("tenant")[:limit]:
            generation.cancel_requested = True
            generation.error_code = DEADLINE_EXCEEDED
            if generation.status == Generation.Status.QUEUED:
                # Queued again after an unknown outcome, the upstream may already have charged us: our cost.
                cost = unknown_outcome_cost(generation)
                billing_release(reference=generation.public_id, upstream_cost_micros=cost, reason=DEADLINE_EXCEEDED)
                generation.charged_micros = 0
                generation.upstream_cost_micros = cost
                generation.error_message = "Not started before its Cancel-After deadline; nothing was charged."
                generation_finish(generation=generation, status=Generation.Status.CANCELED)
                canceled.append(generation.pk)
            else:
                # `generation_cancel_finish` keeps the code (see there) when the forwarder settles the stopped call.
                generation.error_message = "Canceled at its Cancel-After deadline while running."
                generation.save(update_fields=["cancel_requested", "error_code", "error_message", "updated_at"])
                notify_generation_cancel(generation_id=generation.pk)
                running.append(generation.pk)
    return DeadlineSweep(canceled=canceled, running=running)

