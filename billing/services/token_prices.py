"""Token prices (`TokenPrice`): a new row ends the model's current one; rows are never rewritten."""

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from accounts.services import Actor, audit_record
from billing.models import TokenPrice
from project import errors

TOKEN_KINDS = ("text_input_micros", "image_input_micros", "text_output_micros", "image_output_micros")


class InvalidTokenPrice(errors.InvalidRequest):
    code = "invalid_price"
    message = "A token price cannot be negative."


def token_price_set(
    *,
    model_id: str,
    text_input_micros: int = 0,
    image_input_micros: int = 0,
    text_output_micros: int = 0,
    image_output_micros: int = 0,
    actor: Actor,
    effective_from: datetime | None = None,
    note: str = "",
) -> TokenPrice:
    """Per-million-token prices of `model_id` from `effective_from` (default now), ending the current row."""
    values = {
        "text_input_micros": text_input_micros,
        "image_input_micros": image_input_micros,
        "text_output_micros": text_output_micros,
        "image_output_micros": image_output_micros,
    }
    if any(value < 0 for value in values.values()):
        raise InvalidTokenPrice(param=min(name for name, value in values.items() if value < 0))
    effective_from = effective_from or timezone.now()
    with transaction.atomic():
        previous = list(
            TokenPrice.objects.select_for_update().filter(
                model_id=model_id, effective_to__isnull=True, effective_from__lt=effective_from
            )
        )
        TokenPrice.objects.filter(pk__in=[row.pk for row in previous]).update(effective_to=effective_from)
        price = TokenPrice.objects.create(model_id=model_id, effective_from=effective_from, note=note, **values)
        audit_record(
            actor=actor,
            action="token_price.set",
            target=price,
            tenant=None,
            before={"token_prices": [{"id": row.pk, **{k: getattr(row, k) for k in TOKEN_KINDS}} for row in previous]},
            after={"model_id": model_id, **values, "effective_from": effective_from.isoformat()},
        )
    return price
