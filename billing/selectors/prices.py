"""Prices: the one in effect for a request, the current list, and a tenant's list with its markup."""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.models import Tenant
from billing.models import ANY, Price
from billing.money import apply_markup
from billing.selectors.limits import tenant_limits
from project.readcache import readcache_get


def _prices_in_effect_or_later(model_id: str) -> tuple[Price, ...]:
    now = timezone.now()
    return tuple(Price.objects.filter(Q(effective_to__isnull=True) | Q(effective_to__gt=now), model_id=model_id))


def price_current(*, model_id: str, quality: str, size: str, at: datetime | None = None) -> Price | None:
    """The most specific price in effect: exact quality and size beat `*`, quality weighing more than size.

    Now (no `at`): from the read cache, which keeps every row of the model that has not ended yet, so a price that
    takes effect later is picked up by the clock, not by a reload."""
    if at is None:
        at = timezone.now()
        rows = readcache_get(("prices", model_id), lambda: _prices_in_effect_or_later(model_id))
    else:
        rows = Price.objects.filter(Q(effective_to__isnull=True) | Q(effective_to__gt=at), model_id=model_id)
    candidates = [
        price
        for price in rows
        if price.quality in (quality, ANY)
        and price.size in (size, ANY)
        and price.effective_from <= at
        and (price.effective_to is None or price.effective_to > at)
    ]
    return max(
        candidates,
        key=lambda price: (price.quality != ANY, price.size != ANY, price.effective_from, price.pk),
        default=None,
    )


def price_list_current(*, at: datetime | None = None) -> QuerySet[Price]:
    at = at or timezone.now()
    return Price.objects.filter(Q(effective_to__isnull=True) | Q(effective_to__gt=at), effective_from__lte=at)


@dataclass(frozen=True)
class TenantPrice:
    model_id: str
    quality: str
    size: str
    unit_price_micros: int


def tenant_price_list(*, tenant: Tenant) -> dict[str, list[TenantPrice]]:
    """This tenant's current unit prices per model (cost × its plan's markup); `*` means any quality or size."""
    markup_bps = tenant_limits(tenant=tenant).markup_bps
    prices: dict[str, list[TenantPrice]] = {}
    for price in price_list_current().order_by("model_id", "quality", "size"):
        prices.setdefault(price.model_id, []).append(
            TenantPrice(price.model_id, price.quality, price.size, apply_markup(price.cost_micros, markup_bps))
        )
    return prices
