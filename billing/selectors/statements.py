"""What a monthly statement sums: its lines, the credits of a period and a balance at a moment."""

from datetime import datetime
from typing import Any

from django.db.models import Sum
from django.db.models.functions import Coalesce

from billing.models import LedgerEntry, StatementLine

Kind = LedgerEntry.Kind


def statement_line_totals(*, tenant_id: int, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The month's captures as statement lines: delivered images per model, quality, size and unit price (so
    images × unit price = amount), and apart from them, per model, quality and size, the charges for generations
    canceled while running — captures of no image (`billing_capture` with `images=0`)."""
    captures = LedgerEntry.objects.filter(
        tenant_id=tenant_id, kind=Kind.CAPTURE, created_at__gte=start, created_at__lt=end
    )
    delivered = [
        {**row, "charge": StatementLine.Charge.IMAGES}
        for row in captures.filter(images__gt=0)
        .values("model_id", "quality", "size", "unit_price_micros")
        .annotate(images=Sum("images"), amount_micros=Sum("amount_micros"))
        .order_by()
    ]
    canceled = [
        {**row, "charge": StatementLine.Charge.CANCELED, "images": 0, "unit_price_micros": 0}
        for row in captures.filter(images=0)
        .values("model_id", "quality", "size")
        .annotate(amount_micros=Sum("amount_micros"))
        .order_by()
    ]
    return sorted(
        delivered + canceled,
        key=lambda line: (
            line["model_id"], line["quality"], line["size"], line["charge"] != StatementLine.Charge.IMAGES,
            line["unit_price_micros"],
        ),
    )


def tenant_credits_between(*, tenant_id: int, start: datetime | None, end: datetime) -> int:
    entries = LedgerEntry.objects.filter(
        tenant_id=tenant_id, kind__in=[Kind.GRANT, Kind.ADJUST], created_at__lt=end
    )
    if start is not None:
        entries = entries.filter(created_at__gte=start)
    return entries.aggregate(total=Coalesce(Sum("amount_micros"), 0))["total"]


def tenant_balance_at(*, tenant_id: int, at: datetime) -> int:
    captures = LedgerEntry.objects.filter(
        tenant_id=tenant_id, kind=Kind.CAPTURE, created_at__lt=at
    ).aggregate(total=Coalesce(Sum("amount_micros"), 0))["total"]
    return tenant_credits_between(tenant_id=tenant_id, start=None, end=at) - captures
