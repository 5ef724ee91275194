"""Ledger reads: settlements and open holds, what the wallet's period counters say, and a key's spend."""

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.db.models import Exists, OuterRef, QuerySet, Sum
from django.db.models.functions import Coalesce

from accounts.models import ApiKey
from billing.models import LedgerEntry, Wallet

Kind = LedgerEntry.Kind


def ledger_settlements(reference: Any) -> QuerySet[LedgerEntry]:
    return LedgerEntry.objects.filter(reference=reference, kind__in=[Kind.CAPTURE, Kind.RELEASE])


def ledger_open_holds() -> QuerySet[LedgerEntry]:
    return LedgerEntry.objects.filter(kind=Kind.HOLD).exclude(
        Exists(ledger_settlements(OuterRef("reference")))
    )


@dataclass(frozen=True)
class PeriodUse:
    images: int
    amount_micros: int


def wallet_period_use(*, wallet: Wallet, day: date | None = None, month: date | None = None) -> PeriodUse:
    """What the wallet's counters say was captured on `day` or in `month` (zero when they count another period)."""
    if day is not None:
        return PeriodUse(images=wallet.day_images if wallet.day_start == day else 0, amount_micros=0)
    if wallet.month_start != month:
        return PeriodUse(images=0, amount_micros=0)
    return PeriodUse(images=wallet.month_images, amount_micros=wallet.month_spend_micros)


def api_key_spend_since(*, api_key: ApiKey, since: datetime) -> int:
    """Captured plus still-held amounts for one key in the period."""
    captured = LedgerEntry.objects.filter(
        api_key=api_key, kind=Kind.CAPTURE, created_at__gte=since
    ).aggregate(total=Coalesce(Sum("amount_micros"), 0))["total"]
    held = (
        ledger_open_holds()
        .filter(api_key=api_key)
        .aggregate(total=Coalesce(Sum("amount_micros"), 0))["total"]
    )
    return captured + held
