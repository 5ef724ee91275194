"""Reads: prices, effective limits, quota use, usage, the staff tenant list, drift, statements and the staff
report."""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, Exists, F, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from accounts.models import ApiKey, Tenant
from billing.defaults import DEFAULT_PLAN_VALUES, LATER_DEFAULT_PLAN_VALUES
from billing.models import ANY, LedgerEntry, Plan, Price, TenantPlan, Wallet
from billing.money import apply_markup
from billing.periods import day_start, month_start, next_month_start

Kind = LedgerEntry.Kind

LIMIT_FIELDS = (
    "markup_bps",
    "allowed_models",
    "max_n",
    "max_concurrent",
    "max_queued",
    "max_concurrent_waits",
    "images_per_day",
    "images_per_month",
    "monthly_spend_limit_micros",
    "requests_per_minute",
    "key_monthly_budget_micros",
)


# --- Prices and limits ----------------------------------------------------------------------------------


def price_current(*, model_id: str, quality: str, size: str, at: datetime | None = None) -> Price | None:
    """The most specific price in effect: exact quality and size beat `*`, quality weighing more than size."""
    at = at or timezone.now()
    candidates = Price.objects.filter(
        Q(effective_to__isnull=True) | Q(effective_to__gt=at),
        model_id=model_id,
        quality__in={quality, ANY},
        size__in={size, ANY},
        effective_from__lte=at,
    )
    return max(
        candidates,
        key=lambda price: (price.quality != ANY, price.size != ANY, price.effective_from, price.pk),
        default=None,
    )


def price_list_current(*, at: datetime | None = None) -> QuerySet[Price]:
    at = at or timezone.now()
    return Price.objects.filter(Q(effective_to__isnull=True) | Q(effective_to__gt=at), effective_from__lte=at)


def plan_get_default() -> Plan:
    return Plan.objects.filter(is_default=True).first() or Plan(**DEFAULT_PLAN_VALUES, **LATER_DEFAULT_PLAN_VALUES)


def plan_get_by_name(*, name: str) -> Plan | None:
    return Plan.objects.filter(name=name).first()


@dataclass(frozen=True)
class Limits:
    """A tenant's effective limits: its plan with its overrides applied. `None` means unlimited."""

    plan_name: str
    markup_bps: int
    allowed_models: tuple[str, ...]
    max_n: int
    max_concurrent: int | None
    max_queued: int | None
    max_concurrent_waits: int | None
    images_per_day: int | None
    images_per_month: int | None
    monthly_spend_limit_micros: int | None
    requests_per_minute: int | None
    key_monthly_budget_micros: int | None

    def allows_model(self, model_id: str) -> bool:
        return not self.allowed_models or model_id in self.allowed_models


def tenant_limits(*, tenant: Tenant, api_key: ApiKey | None = None) -> Limits:
    assignment = TenantPlan.objects.select_related("plan").filter(tenant=tenant).first()
    plan = assignment.plan if assignment else plan_get_default()
    values = {field: getattr(plan, field) for field in LIMIT_FIELDS}
    if assignment:
        values.update(
            {
                field: getattr(assignment, field)
                for field in LIMIT_FIELDS
                if getattr(assignment, field) is not None
            }
        )
    if api_key is not None and api_key.monthly_budget_micros is not None:
        values["key_monthly_budget_micros"] = api_key.monthly_budget_micros
    values["allowed_models"] = tuple(values["allowed_models"] or ())
    return Limits(plan_name=plan.name, **values)


# --- Ledger reads ---------------------------------------------------------------------------------------


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


def _captured(entries: QuerySet[LedgerEntry]) -> PeriodUse:
    totals = entries.filter(kind=Kind.CAPTURE).aggregate(
        images=Coalesce(Sum("images"), 0), amount=Coalesce(Sum("amount_micros"), 0)
    )
    return PeriodUse(images=totals["images"], amount_micros=totals["amount"])


def tenant_captured_since(*, tenant_id: int, since: datetime) -> PeriodUse:
    return _captured(LedgerEntry.objects.filter(tenant_id=tenant_id, created_at__gte=since))


def api_key_spend_since(*, api_key: ApiKey, since: datetime) -> int:
    """Captured plus still-held amounts for one key in the period."""
    captured = _captured(LedgerEntry.objects.filter(api_key=api_key, created_at__gte=since)).amount_micros
    held = (
        ledger_open_holds()
        .filter(api_key=api_key)
        .aggregate(total=Coalesce(Sum("amount_micros"), 0))["total"]
    )
    return captured + held


@dataclass(frozen=True)
class QuotaLine:
    name: str
    unit: str  # "images", "generations", "requests", "micros"
    limit: int | None
    used: int
    resets_at: datetime | None

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(self.limit - self.used, 0)


@dataclass(frozen=True)
class QuotaStatus:
    limits: Limits
    wallet: Wallet
    lines: list[QuotaLine]


def quota_status(
    *, tenant: Tenant, api_key: ApiKey, requests_this_minute: int, now: datetime | None = None
) -> QuotaStatus:
    now = now or timezone.now()
    limits = tenant_limits(tenant=tenant, api_key=api_key)
    wallet = Wallet.objects.filter(tenant=tenant).first() or Wallet(tenant=tenant)
    today = tenant_captured_since(tenant_id=tenant.pk, since=day_start(now))
    month = tenant_captured_since(tenant_id=tenant.pk, since=month_start(now))
    next_minute = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    tomorrow = day_start(now) + timedelta(days=1)
    next_month = next_month_start(now)
    lines = [
        QuotaLine("concurrent_generations", "generations", limits.max_concurrent, wallet.open_holds, None),
        QuotaLine(
            "images_per_day",
            "images",
            limits.images_per_day,
            today.images + wallet.open_hold_images,
            tomorrow,
        ),
        QuotaLine(
            "images_per_month",
            "images",
            limits.images_per_month,
            month.images + wallet.open_hold_images,
            next_month,
        ),
        QuotaLine(
            "monthly_spend",
            "micros",
            limits.monthly_spend_limit_micros,
            month.amount_micros + wallet.held_micros,
            next_month,
        ),
        QuotaLine(
            "key_monthly_budget",
            "micros",
            limits.key_monthly_budget_micros,
            api_key_spend_since(api_key=api_key, since=month_start(now)),
            next_month,
        ),
        QuotaLine(
            "requests_per_minute", "requests", limits.requests_per_minute, requests_this_minute, next_minute
        ),
    ]
    return QuotaStatus(limits=limits, wallet=wallet, lines=lines)


# --- Usage ----------------------------------------------------------------------------------------------

USAGE_GROUPS = {
    "model": "model_id",
    "quality": "quality",
    "size": "size",
    "day": "day",
    "api_key": "api_key__prefix",
}


def usage_rows(
    *, tenant: Tenant, start: datetime, end: datetime, group_by: list[str]
) -> list[dict[str, Any]]:
    """Charged usage (CAPTURE rows) in [start, end), grouped by any of USAGE_GROUPS."""
    entries = LedgerEntry.objects.filter(
        tenant=tenant, kind=Kind.CAPTURE, created_at__gte=start, created_at__lt=end
    )
    if "day" in group_by:
        entries = entries.annotate(day=TruncDate("created_at", tzinfo=UTC))
    columns = [USAGE_GROUPS[name] for name in group_by]
    rows = (
        entries.values(*columns)
        .annotate(requests=Count("id"), images=Sum("images"), amount_micros=Sum("amount_micros"))
        .order_by(*columns)
    )
    return [
        {
            **{name: row[USAGE_GROUPS[name]] for name in group_by},
            **{k: row[k] for k in ("requests", "images", "amount_micros")},
        }
        for row in rows
    ]


def usage_totals(*, tenant: Tenant, start: datetime, end: datetime) -> dict[str, int]:
    return LedgerEntry.objects.filter(
        tenant=tenant, kind=Kind.CAPTURE, created_at__gte=start, created_at__lt=end
    ).aggregate(
        requests=Count("id"),
        images=Coalesce(Sum("images"), 0),
        amount_micros=Coalesce(Sum("amount_micros"), 0),
    )


# --- Staff tenant list ----------------------------------------------------------------------------------


def _captured_this_month(field: str, *, since: datetime) -> Coalesce:
    captures = (
        LedgerEntry.objects.filter(tenant=OuterRef("pk"), kind=Kind.CAPTURE, created_at__gte=since)
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
    default_plan = Plan.objects.filter(is_default=True).values("name")[:1]
    return tenants.select_related("wallet").annotate(
        plan_label=Coalesce(
            F("billing_plan__plan__name"), Subquery(default_plan), Value(DEFAULT_PLAN_VALUES["name"])
        ),
        month_images=_captured_this_month("images", since=since),
        month_charged_micros=_captured_this_month("amount_micros", since=since),
    )


# --- Invariants -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WalletDrift:
    tenant_slug: str
    field: str
    stored: int
    expected: int

    def __str__(self) -> str:
        return f"{self.tenant_slug}: {self.field} is {self.stored}, ledger says {self.expected}"


def wallet_drifts() -> list[WalletDrift]:
    """balance = Σ grants + Σ adjustments − Σ captures; held (and the open-hold counters) = Σ open holds.

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


# --- Statements -----------------------------------------------------------------------------------------


def statement_line_totals(*, tenant_id: int, start: datetime, end: datetime) -> Iterable[dict[str, Any]]:
    return (
        LedgerEntry.objects.filter(
            tenant_id=tenant_id, kind=Kind.CAPTURE, created_at__gte=start, created_at__lt=end
        )
        .values("model_id", "quality", "size", "unit_price_micros")
        .annotate(images=Sum("images"), amount_micros=Sum("amount_micros"))
        .order_by("model_id", "quality", "size", "unit_price_micros")
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


# --- Staff billing report -------------------------------------------------------------------------------

REPORT_GROUPS = {
    "day": ("day",),
    "tenant": ("tenant__slug",),
    "model": ("model_id",),
    "model_quality_size": ("model_id", "quality", "size"),
    "api_key": ("tenant__slug", "api_key__prefix"),
}


@dataclass(frozen=True)
class ReportRow:
    group: tuple[Any, ...]
    requests: int
    images: int
    price_micros: int
    cost_micros: int
    refunded_cost_micros: int

    @property
    def margin_micros(self) -> int:
        """What we earned after paying upstream, including calls we paid for but refunded to the tenant."""
        return self.price_micros - self.cost_micros - self.refunded_cost_micros


def billing_report(
    *, tenant: Tenant | None, start: datetime, end: datetime, group_by: str
) -> Iterator[ReportRow]:
    entries = LedgerEntry.objects.filter(
        kind__in=[Kind.CAPTURE, Kind.RELEASE], created_at__gte=start, created_at__lt=end
    )
    if tenant is not None:
        entries = entries.filter(tenant=tenant)
    columns = REPORT_GROUPS[group_by]
    if "day" in columns:
        entries = entries.annotate(day=TruncDate("created_at", tzinfo=UTC))
    captured = Q(kind=Kind.CAPTURE)
    rows = (
        entries.values(*columns)
        .annotate(
            requests=Count("id", filter=captured),
            images=Coalesce(Sum("images", filter=captured), 0),
            price=Coalesce(Sum("amount_micros", filter=captured), 0),
            cost=Coalesce(Sum("cost_micros", filter=captured), 0),
            refunded_cost=Coalesce(Sum("cost_micros", filter=Q(kind=Kind.RELEASE)), 0),
        )
        .order_by(*columns)
    )
    for row in rows.iterator(chunk_size=2000):
        yield ReportRow(
            group=tuple(row[column] for column in columns),
            requests=row["requests"],
            images=row["images"],
            price_micros=row["price"],
            cost_micros=row["cost"],
            refunded_cost_micros=row["refunded_cost"],
        )


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
