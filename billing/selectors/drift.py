"""What `billing_check` and the hourly task look at: the money invariants (each wallet against its ledger) and, as
warnings, upstream cost estimates that drift from what the upstream actually charged."""

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce

from billing.models import LedgerEntry, Wallet
from billing.periods import as_utc_start, month_start, next_month_start
from billing.selectors.ledger import ledger_open_holds
from billing.selectors.reports import billing_report

Kind = LedgerEntry.Kind


@dataclass(frozen=True)
class WalletDrift:
    tenant_slug: str
    field: str
    stored: int
    expected: int

    def __str__(self) -> str:
        return f"{self.tenant_slug}: {self.field} is {self.stored}, ledger says {self.expected}"


def _period_counters_from_ledger(wallet: Wallet) -> dict[str, int]:
    """The wallet's period counters recomputed from the captures of the periods they claim to count."""
    captures = LedgerEntry.objects.filter(tenant_id=wallet.tenant_id, kind=Kind.CAPTURE)
    month = {"images": 0, "amount": 0}
    if wallet.month_start is not None:
        start = as_utc_start(wallet.month_start)
        month = captures.filter(created_at__gte=start, created_at__lt=next_month_start(start)).aggregate(
            images=Coalesce(Sum("images"), 0), amount=Coalesce(Sum("amount_micros"), 0)
        )
    day_images = 0
    if wallet.day_start is not None:
        start = as_utc_start(wallet.day_start)
        day_images = captures.filter(created_at__gte=start, created_at__lt=start + timedelta(days=1)).aggregate(
            images=Coalesce(Sum("images"), 0)
        )["images"]
    return {"month_images": month["images"], "month_spend_micros": month["amount"], "day_images": day_images}


def wallet_drifts() -> list[WalletDrift]:
    """balance = Σ grants + Σ adjustments − Σ captures; held (and the open-hold counters) = Σ open holds; the
    period counters = Σ captures of the periods they count.

    Wallets and ledger are read in one snapshot (REPEATABLE READ on PostgreSQL): read one statement at a time, a
    settlement committing between the wallet read and the ledger sums would show as drift while money moves.
    """
    if connection.in_atomic_block:
        return _wallet_drifts()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        return _wallet_drifts()


def _wallet_drifts() -> list[WalletDrift]:
    drifts: list[WalletDrift] = []
    for wallet in Wallet.objects.select_related("tenant").order_by("tenant__slug"):
        entries = LedgerEntry.objects.filter(tenant_id=wallet.tenant_id)
        sums = entries.aggregate(
            credits=Coalesce(Sum("amount_micros", filter=Q(kind__in=[Kind.GRANT, Kind.ADJUST])), 0),
            captures=Coalesce(Sum("amount_micros", filter=Q(kind=Kind.CAPTURE)), 0),
        )
        open_holds = (
            ledger_open_holds()
            .filter(tenant_id=wallet.tenant_id)
            .aggregate(
                held=Coalesce(Sum("amount_micros"), 0), count=Count("id"), images=Coalesce(Sum("images"), 0)
            )
        )
        expected = {
            "balance_micros": sums["credits"] - sums["captures"],
            "held_micros": open_holds["held"],
            "open_holds": open_holds["count"],
            "open_hold_images": open_holds["images"],
            **_period_counters_from_ledger(wallet),
        }
        drifts += [
            WalletDrift(wallet.tenant.slug, field, getattr(wallet, field), value)
            for field, value in expected.items()
            if getattr(wallet, field) != value
        ]
    orphaned = (
        LedgerEntry.objects.exclude(tenant_id__in=Wallet.objects.values("tenant_id"))
        .values_list("tenant__slug", flat=True)
        .distinct()
    )
    drifts += [WalletDrift(slug, "wallet", 0, 1) for slug in orphaned]
    return drifts


@dataclass(frozen=True)
class UpstreamCostDrift:
    """A model whose actual upstream cost in a month is off the estimate by more than allowed."""

    model_id: str
    month: date
    images: int  # images whose actual cost is known
    estimate_micros: int
    actual_micros: int
    drift_percent: float

    def __str__(self) -> str:
        return (
            f"{self.model_id} {self.month:%Y-%m}: actual upstream cost {self.actual_micros} micro-USD vs estimate"
            f" {self.estimate_micros} over {self.images} images ({self.drift_percent:+.1f}%)"
        )


def upstream_cost_drifts(*, now: datetime) -> list[UpstreamCostDrift]:
    """Per model and UTC month (the current one and the last), where at least `UPSTREAM_COST_DRIFT_MIN_IMAGES`
    images have a known actual cost: those whose actual cost is more than `UPSTREAM_COST_DRIFT_MAX_PERCENT` away
    from the estimate of the same images.

    A warning, not a money invariant: the books still add up (tenants pay the price list, the ledger records both
    figures); it says the price list no longer matches what the upstream charges, which staff fix with a new price."""
    start = month_start(month_start(now) - timedelta(days=1))
    drifts = []
    for row in billing_report(tenant=None, start=start, end=next_month_start(now), group_by="month_model", now=now):
        month, model_id = row.group
        drift = row.actual_drift_percent
        if row.actual_images < settings.UPSTREAM_COST_DRIFT_MIN_IMAGES or drift is None:
            continue
        if abs(drift) > settings.UPSTREAM_COST_DRIFT_MAX_PERCENT:
            drifts.append(
                UpstreamCostDrift(
                    model_id=model_id or "",
                    month=month,
                    images=row.actual_images,
                    estimate_micros=row.actual_estimate_micros,
                    actual_micros=row.actual_cost_micros,
                    drift_percent=drift,
                )
            )
    return drifts
