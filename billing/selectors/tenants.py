"""The staff tenant list: each tenant with its plan and this month's money, in one query."""

from datetime import datetime

from django.db.models import IntegerField, OuterRef, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import Tenant
from billing.models import LedgerEntry
from billing.periods import month_start
from billing.selectors.limits import tenant_plan_value


def _captured_this_month(field: str, *, since: datetime) -> Coalesce:
    captures = (
        LedgerEntry.objects.filter(tenant=OuterRef("pk"), kind=LedgerEntry.Kind.CAPTURE, created_at__gte=since)
        .order_by()
        .values("tenant")
        .annotate(total=Sum(field))
        .values("total")
    )
    return Coalesce(Subquery(captures, output_field=IntegerField()), Value(0))


def tenant_list_with_billing(*, tenants: QuerySet[Tenant], now: datetime | None = None) -> QuerySet[Tenant]:
    """The tenants with their wallet, plan name (`plan_label`) and this month's captured images and charges
    (`month_images`, `month_charged_micros`), in one query however many tenants are listed."""
    since = month_start(now or timezone.now())
    return tenants.select_related("wallet").annotate(
        plan_label=tenant_plan_value("name"),
        month_images=_captured_this_month("images", since=since),
        month_charged_micros=_captured_this_month("amount_micros", since=since),
    )
