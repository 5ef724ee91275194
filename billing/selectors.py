"""Reads: prices, effective limits, quota use, usage, the staff tenant list, drift, statements and the staff
report."""

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, Exists, F, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from accounts.models import ApiKey, Tenant
from billing.defaults import DEFAULT_PLAN_VALUES, LATER_DEFAULT_PLAN_VALUES
from billing.models import ANY, LedgerEntry, Plan, Price, StatementLine, TenantPlan, Wallet
from billing.money import apply_markup
from billing.periods import as_utc_start, day_start, month_start, next_month_start
from project.readcache import readcache_get

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
    "retention_days",
)


# --- Prices and limits ----------------------------------------------------------------------------------


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
    retention_days: int | None

    def allows_model(self, model_id: str) -> bool:
        return not self.allowed_models or model_id in self.allowed_models


def _tenant_limits_load(tenant_id: int) -> Limits:
    assignment = TenantPlan.objects.select_related("plan").filter(tenant_id=tenant_id).first()
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
    values["allowed_models"] = tuple(values["allowed_models"] or ())
    values["retention_days"] = values["retention_days"] or None  # 0 (an override's "keep") means no period
    return Limits(plan_name=plan.name, **values)


def tenants_retention_days() -> dict[int, int]:
    """Tenant id → days its finished generations' files are kept, for every tenant that has a retention period
    (its override, else its plan's, else the default plan's; 0 or empty keeps files)."""
    default_days = plan_get_default().retention_days
    days_by_tenant: dict[int, int | None] = {}
    if default_days:
        days_by_tenant = dict.fromkeys(Tenant.objects.values_list("id", flat=True), default_days)
    for tenant_id, override, plan_days in TenantPlan.objects.values_list(
        "tenant_id", "retention_days", "plan__retention_days"
    ):
        days_by_tenant[tenant_id] = override if override is not None else plan_days
    return {tenant_id: days for tenant_id, days in days_by_tenant.items() if days}


def tenant_limits(*, tenant: Tenant, api_key: ApiKey | None = None) -> Limits:
    """The tenant's plan with its overrides (from the read cache), and the key's own budget if it has one."""
    limits = readcache_get(("limits", tenant.pk), lambda: _tenant_limits_load(tenant.pk))
    if api_key is not None and api_key.monthly_budget_micros is not None:
        return dataclasses.replace(limits, key_monthly_budget_micros=api_key.monthly_budget_micros)
    return limits


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


def wallet_period_use(*, wallet: Wallet, day: date | None = None, month: date | None = None) -> PeriodUse:
    """What the wallet's counters say was captured on `day` or in `month` (zero when they count another period)."""
    if day is not None:
        return PeriodUse(images=wallet.day_images if wallet.day_start == day else 0, amount_micros=0)
    if wallet.month_start != month:
        return PeriodUse(images=0, amount_micros=0)
    return PeriodUse(images=wallet.month_images, amount_micros=wallet.month_spend_micros)


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
class TenantActivity:
    """The tenant's work in progress, counted by the caller (generations; billing does not read generations)."""

    running: int
    queued: int
    waits: int


@dataclass(frozen=True)
class QuotaStatus:
    limits: Limits
    wallet: Wallet
    lines: list[QuotaLine]


def quota_status(
    *,
    tenant: Tenant,
    api_key: ApiKey,
    requests_this_minute: int,
    activity: TenantActivity,
    now: datetime | None = None,
) -> QuotaStatus:
    """Each limit with its use. The plan's `max_concurrent` bounds running generations (the forwarder claims no
    more), `max_queued` the ones waiting their turn and `max_concurrent_waits` the requests waiting for a result:
    one line each. (A submit is refused with `queue_full` once running + queued reach the two limits' sum.)"""
    now = now or timezone.now()
    limits = tenant_limits(tenant=tenant, api_key=api_key)
    wallet = Wallet.objects.filter(tenant=tenant).first() or Wallet(tenant=tenant)
    today = wallet_period_use(wallet=wallet, day=day_start(now).date())
    month = wallet_period_use(wallet=wallet, month=month_start(now).date())
    next_minute = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    tomorrow = day_start(now) + timedelta(days=1)
    next_month = next_month_start(now)
    lines = [
        QuotaLine("concurrent_generations", "generations", limits.max_concurrent, activity.running, None),
        QuotaLine("queued_generations", "generations", limits.max_queued, activity.queued, None),
        QuotaLine("concurrent_waits", "requests", limits.max_concurrent_waits, activity.waits, None),
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
    """Charged usage (CAPTURE rows) in [start, end), grouped by any of USAGE_GROUPS; without a grouping, one row
    with the period's total."""
    if not group_by:
        return [usage_totals(tenant=tenant, start=start, end=end)]
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


# --- Statements -----------------------------------------------------------------------------------------


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


def tenant_plan_names(*, tenant_ids: set[int]) -> dict[int, str]:
    """Tenant id → the name of its plan (its assignment, else the default plan), in one query."""
    assigned = dict(
        TenantPlan.objects.filter(tenant_id__in=tenant_ids).values_list("tenant_id", "plan__name")
    )
    default = plan_get_default().name if len(assigned) < len(tenant_ids) else ""
    return {tenant_id: assigned.get(tenant_id, default) for tenant_id in tenant_ids}
