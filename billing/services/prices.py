"""Prices: what a request would cost (a quote) and staff setting or ending an upstream price."""

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from accounts.models import Tenant
from accounts.services import Actor, audit_record
from billing.model_ids import price_model_id_resolve
from billing.models import Price
from billing.money import apply_markup
from billing.selectors.limits import tenant_limits
from billing.selectors.prices import price_current
from project import errors
from project.readcache import readcache_bump


class PriceNotFound(errors.InvalidRequest):
    code = "model_not_priced"
    message = "This model has no price for the requested quality and size, so it cannot be used yet."


class InvalidPrice(errors.InvalidRequest):
    code = "invalid_price"
    message = "A price cannot be negative."


@dataclass(frozen=True)
class Quote:
    price_id: int
    model_id: str
    quality: str
    size: str
    n: int
    unit_cost_micros: int
    unit_price_micros: int
    estimate_micros: int


def price_quote(*, tenant: Tenant, model_id: str, quality: str, size: str, n: int) -> Quote:
    price = price_current(model_id=model_id, quality=quality, size=size)
    if price is None:
        detail = f"quality '{quality}', size '{size}'" if quality else f"size '{size}'"
        raise PriceNotFound(
            f"'{model_id}' has no price for {detail}, so it cannot be used yet.", param="model"
        )
    unit_price = apply_markup(price.cost_micros, tenant_limits(tenant=tenant).markup_bps)
    return Quote(
        price_id=price.pk,
        model_id=model_id,
        quality=quality,
        size=size,
        n=n,
        unit_cost_micros=price.cost_micros,
        unit_price_micros=unit_price,
        estimate_micros=unit_price * n,
    )


def price_set(
    *,
    model_id: str,
    quality: str,
    size: str,
    cost_micros: int,
    actor: Actor,
    effective_from: datetime | None = None,
    note: str = "",
) -> Price:
    """A new price from `effective_from` (default now); the current row for the same key ends there. The model
    must be in the catalog (an alias is stored as its catalog id): a price for any other id could never be charged."""
    if cost_micros < 0:
        raise InvalidPrice(param="cost")
    model_id = price_model_id_resolve(model_id)
    effective_from = effective_from or timezone.now()
    with transaction.atomic():
        previous = list(
            Price.objects.select_for_update().filter(
                model_id=model_id,
                quality=quality,
                size=size,
                effective_to__isnull=True,
                effective_from__lt=effective_from,
            )
        )
        Price.objects.filter(pk__in=[p.pk for p in previous]).update(effective_to=effective_from)
        price = Price.objects.create(
            model_id=model_id,
            quality=quality,
            size=size,
            cost_micros=cost_micros,
            effective_from=effective_from,
            note=note,
        )
        audit_record(
            actor=actor,
            action="price.set",
            target=price,
            tenant=None,
            before={"prices": [{"id": p.pk, "cost_micros": p.cost_micros} for p in previous]},
            after={
                "model_id": model_id,
                "quality": quality,
                "size": size,
                "cost_micros": cost_micros,
                "effective_from": effective_from.isoformat(),
            },
        )
    return price


def price_end(*, price: Price, effective_to: datetime | None, actor: Actor) -> Price:
    with transaction.atomic():
        before = {"effective_to": price.effective_to.isoformat() if price.effective_to else None}
        Price.objects.filter(pk=price.pk).update(effective_to=effective_to)
        readcache_bump()  # update() sends no post_save
        price.refresh_from_db()
        audit_record(
            actor=actor,
            action="price.changed",
            target=price,
            tenant=None,
            before=before,
            after={"effective_to": effective_to.isoformat() if effective_to else None},
        )
    return price
