"""Writes for prices, plans, wallets, the ledger and statements.

Every money movement locks the tenant's wallet row, changes it with a conditional `UPDATE`, and appends its
ledger row in the same transaction. The unique (reference, kind) constraint on the ledger makes each movement
idempotent: a retried capture or release finds the settlement already there and changes nothing.
"""

import math
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import structlog
from django.db import IntegrityError, transaction
from django.db.models import F, Model
from django.forms.models import model_to_dict
from django.utils import timezone

from accounts.models import ApiKey, Tenant
from accounts.services import SYSTEM, Actor, audit_record
from billing.models import LedgerEntry, Plan, Price, Statement, StatementLine, TenantPlan, Wallet
from billing.money import apply_markup, micros_to_usd
from billing.selectors import (
    Limits,
    api_key_spend_since,
    as_utc_start,
    day_start,
    ledger_settlements,
    month_start,
    next_month_start,
    price_current,
    statement_line_totals,
    tenant_balance_at,
    tenant_captured_since,
    tenant_credits_between,
    tenant_limits,
)
from project import errors

logger = structlog.get_logger(__name__)
Kind = LedgerEntry.Kind

# A generation usually finishes within a minute; asking the client to come back sooner only burns requests.
CONCURRENCY_RETRY_AFTER_SECONDS = 5


# --- Refusals -------------------------------------------------------------------------------------------


class PriceNotFound(errors.InvalidRequest):
    code = "model_not_priced"
    message = "This model has no price for the requested quality and size, so it cannot be used yet."


class QuotaExceeded(errors.DomainError):
    """Base of every quota refusal, so callers can catch them together."""


class ModelNotAllowed(QuotaExceeded, errors.Forbidden):
    code = "model_not_allowed"
    message = "Your plan does not include this model."


class NAbovePlanLimit(QuotaExceeded, errors.InvalidRequest):
    code = "n_above_plan_limit"


class ConcurrencyLimit(QuotaExceeded, errors.RateLimited):
    code = "concurrency_limit"


class DailyImageLimit(QuotaExceeded, errors.RateLimited):
    code = "daily_image_limit"


class MonthlyImageLimit(QuotaExceeded, errors.RateLimited):
    code = "monthly_image_limit"


class SpendLimitReached(QuotaExceeded, errors.PaymentRequired):
    code = "spend_limit_reached"


class KeyBudgetReached(QuotaExceeded, errors.PaymentRequired):
    code = "key_budget_reached"


class InsufficientCredit(QuotaExceeded, errors.PaymentRequired):
    code = "insufficient_credit"
    message = "Not enough credit for this request. Top up your balance or ask for a credit limit."


class HoldNotFound(Exception):
    """A capture for a reference that was never reserved: a bug in the caller, never a free image."""


class ReferenceTaken(Exception):
    """The reference already belongs to another tenant's ledger row."""


class InvalidWalletAmount(errors.InvalidRequest):
    code = "invalid_amount"


class AdjustmentExceedsAvailable(errors.Conflict):
    code = "adjustment_exceeds_available"


def _retry_after(seconds: float) -> int:
    return max(1, math.ceil(seconds))


# --- Prices and quotes ----------------------------------------------------------------------------------


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


def _snapshot(obj: Model) -> dict[str, Any]:
    return {key: value for key, value in model_to_dict(obj).items() if key != "id"}


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
    """A new price from `effective_from` (default now); the current row for the same key ends there."""
    if cost_micros < 0:
        raise InvalidWalletAmount("A price cannot be negative.", param="cost")
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


# --- Plans ----------------------------------------------------------------------------------------------


def plan_save(*, plan: Plan, actor: Actor) -> Plan:
    with transaction.atomic():
        before = _snapshot(Plan.objects.get(pk=plan.pk)) if plan.pk else None
        plan.save()
        audit_record(
            actor=actor, action="plan.saved", target=plan, tenant=None, before=before, after=_snapshot(plan)
        )
    return plan


def tenant_plan_save(*, tenant_plan: TenantPlan, actor: Actor) -> TenantPlan:
    with transaction.atomic():
        before = _snapshot(TenantPlan.objects.get(pk=tenant_plan.pk)) if tenant_plan.pk else None
        tenant_plan.save()
        audit_record(
            actor=actor,
            action="tenant_plan.saved",
            target=tenant_plan,
            tenant=tenant_plan.tenant,
            before=before,
            after=_snapshot(tenant_plan),
        )
    return tenant_plan


def plan_assign(*, tenant: Tenant, plan: Plan, actor: Actor) -> TenantPlan:
    tenant_plan = TenantPlan.objects.filter(tenant=tenant).first() or TenantPlan(tenant=tenant)
    tenant_plan.plan = plan
    return tenant_plan_save(tenant_plan=tenant_plan, actor=actor)


# --- Wallets --------------------------------------------------------------------------------------------


def wallet_get_or_create(*, tenant: Tenant) -> Wallet:
    wallet = Wallet.objects.filter(tenant=tenant).first()
    if wallet is not None:
        return wallet
    try:
        with transaction.atomic():
            return Wallet.objects.create(tenant=tenant)
    except IntegrityError:
        return Wallet.objects.get(tenant=tenant)


def _wallet_locked(tenant: Tenant) -> Wallet:
    """Lock the tenant's wallet row for the rest of the transaction; every money movement of a tenant queues here."""
    wallet_get_or_create(tenant=tenant)
    return Wallet.objects.select_for_update().get(tenant=tenant)


def _available_at_least(wallet: Wallet, amount_micros: int) -> Any:
    return (
        Wallet.objects.filter(pk=wallet.pk)
        .alias(available=F("balance_micros") - F("held_micros") + F("credit_limit_micros"))
        .filter(available__gte=amount_micros)
    )


def wallet_grant(
    *, tenant: Tenant, amount_micros: int, reference: str, actor: Actor, note: str = ""
) -> LedgerEntry:
    """Top up. Idempotent per reference: granting the same reference twice credits once."""
    if amount_micros <= 0:
        raise InvalidWalletAmount("A grant must be a positive amount.", param="amount")
    with transaction.atomic():
        _wallet_locked(tenant)
        existing = LedgerEntry.objects.filter(reference=reference, kind=Kind.GRANT).first()
        if existing is not None:
            if existing.tenant_id != tenant.pk:
                raise ReferenceTaken(f"Grant reference '{reference}' belongs to another tenant.")
            return existing
        Wallet.objects.filter(tenant=tenant).update(balance_micros=F("balance_micros") + amount_micros)
        entry = LedgerEntry.objects.create(
            tenant=tenant,
            kind=Kind.GRANT,
            reference=reference,
            amount_micros=amount_micros,
            actor_user=actor.user,
            note=note,
        )
        audit_record(
            actor=actor,
            action="wallet.granted",
            target=entry,
            tenant=tenant,
            after={"amount_usd": micros_to_usd(amount_micros), "reference": reference, "note": note},
        )
    return entry


def wallet_adjust(
    *, tenant: Tenant, amount_micros: int, reason: str, actor: Actor, reference: str | None = None
) -> LedgerEntry:
    """A staff correction, up or down, with a reason. A debit may not take the wallet below its credit limit."""
    if not reason.strip():
        raise InvalidWalletAmount("An adjustment needs a reason.", param="reason")
    if amount_micros == 0:
        raise InvalidWalletAmount("An adjustment of zero changes nothing.", param="amount")
    reference = reference or f"adj_{uuid.uuid4().hex}"
    with transaction.atomic():
        wallet = _wallet_locked(tenant)
        existing = LedgerEntry.objects.filter(reference=reference, kind=Kind.ADJUST).first()
        if existing is not None:
            if existing.tenant_id != tenant.pk:
                raise ReferenceTaken(f"Adjustment reference '{reference}' belongs to another tenant.")
            return existing
        if not _available_at_least(wallet, -amount_micros).update(
            balance_micros=F("balance_micros") + amount_micros
        ):
            raise AdjustmentExceedsAvailable(
                f"Debiting {micros_to_usd(-amount_micros)} USD would exceed the available "
                f"{micros_to_usd(wallet.available_micros)} USD.",
                param="amount",
            )
        entry = LedgerEntry.objects.create(
            tenant=tenant,
            kind=Kind.ADJUST,
            reference=reference,
            amount_micros=amount_micros,
            actor_user=actor.user,
            note=reason,
        )
        audit_record(
            actor=actor,
            action="wallet.adjusted",
            target=entry,
            tenant=tenant,
            after={"amount_usd": micros_to_usd(amount_micros), "reason": reason, "reference": reference},
        )
    return entry


def wallet_set_credit_limit(*, tenant: Tenant, credit_limit_micros: int, actor: Actor) -> Wallet:
    if credit_limit_micros < 0:
        raise InvalidWalletAmount("A credit limit cannot be negative.", param="credit_limit")
    with transaction.atomic():
        wallet = _wallet_locked(tenant)
        lowered_by = wallet.credit_limit_micros - credit_limit_micros
        if not _available_at_least(wallet, lowered_by).update(credit_limit_micros=credit_limit_micros):
            raise AdjustmentExceedsAvailable(
                "The wallet already uses more credit than that.", param="credit_limit"
            )
        audit_record(
            actor=actor,
            action="wallet.credit_limit_changed",
            target=wallet,
            tenant=tenant,
            before={"credit_limit_usd": micros_to_usd(wallet.credit_limit_micros)},
            after={"credit_limit_usd": micros_to_usd(credit_limit_micros)},
        )
        wallet.refresh_from_db()
    return wallet


# --- Quotas, reservation and settlement -----------------------------------------------------------------


def _quota_check(
    *, limits: Limits, wallet: Wallet, api_key: ApiKey | None, quote: Quote, now: datetime
) -> None:
    """Raise the first limit the request would cross. The caller holds the wallet lock, so counts can't race."""
    if not limits.allows_model(quote.model_id):
        raise ModelNotAllowed(f"Your plan does not include '{quote.model_id}'.", param="model")
    if quote.n > limits.max_n:
        raise NAbovePlanLimit(f"Your plan allows at most {limits.max_n} images per request.", param="n")
    if limits.max_concurrent is not None and wallet.open_holds + 1 > limits.max_concurrent:
        raise ConcurrencyLimit(
            f"At most {limits.max_concurrent} generations may run at once; wait for one to finish.",
            retry_after_seconds=_retry_after(CONCURRENCY_RETRY_AFTER_SECONDS),
        )
    tomorrow = day_start(now) + timedelta(days=1)
    next_month = next_month_start(now)
    if limits.images_per_day is not None:
        today = tenant_captured_since(tenant_id=wallet.tenant_id, since=day_start(now))
        if today.images + wallet.open_hold_images + quote.n > limits.images_per_day:
            raise DailyImageLimit(
                f"This would exceed your limit of {limits.images_per_day} images per day (UTC).",
                retry_after_seconds=_retry_after((tomorrow - now).total_seconds()),
            )
    month = tenant_captured_since(tenant_id=wallet.tenant_id, since=month_start(now))
    if (
        limits.images_per_month is not None
        and month.images + wallet.open_hold_images + quote.n > limits.images_per_month
    ):
        raise MonthlyImageLimit(
            f"This would exceed your limit of {limits.images_per_month} images per month.",
            retry_after_seconds=_retry_after((next_month - now).total_seconds()),
        )
    spend_limit = limits.monthly_spend_limit_micros
    if (
        spend_limit is not None
        and month.amount_micros + wallet.held_micros + quote.estimate_micros > spend_limit
    ):
        raise SpendLimitReached(
            f"This would exceed your monthly spend limit of {micros_to_usd(spend_limit)} USD."
        )
    budget = limits.key_monthly_budget_micros
    if (
        budget is not None
        and api_key is not None
        and api_key_spend_since(api_key=api_key, since=month_start(now)) + quote.estimate_micros > budget
    ):
        raise KeyBudgetReached(
            f"This would exceed this API key's monthly budget of {micros_to_usd(budget)} USD."
        )


def quota_check(*, tenant: Tenant, api_key: ApiKey | None, quote: Quote) -> None:
    """Say yes (return) or refuse with a `QuotaExceeded`. Advisory outside `billing_reserve`, which re-checks under
    the wallet lock."""
    wallet = Wallet.objects.filter(tenant=tenant).first() or Wallet(tenant=tenant)
    _quota_check(
        limits=tenant_limits(tenant=tenant, api_key=api_key),
        wallet=wallet,
        api_key=api_key,
        quote=quote,
        now=timezone.now(),
    )


def billing_reserve(*, tenant: Tenant, api_key: ApiKey | None, reference: str, quote: Quote) -> LedgerEntry:
    """Check the quotas and hold the estimate. Must run inside the caller's `transaction.atomic()` so the hold
    commits or rolls back with the caller's own rows. Idempotent per reference."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("billing_reserve must be called inside transaction.atomic()")
    wallet = _wallet_locked(tenant)
    existing = LedgerEntry.objects.filter(reference=reference, kind=Kind.HOLD).first()
    if existing is not None:
        if existing.tenant_id != tenant.pk:
            raise ReferenceTaken(f"Hold reference '{reference}' belongs to another tenant.")
        return existing
    _quota_check(
        limits=tenant_limits(tenant=tenant, api_key=api_key),
        wallet=wallet,
        api_key=api_key,
        quote=quote,
        now=timezone.now(),
    )
    held = _available_at_least(wallet, quote.estimate_micros).update(
        held_micros=F("held_micros") + quote.estimate_micros,
        open_holds=F("open_holds") + 1,
        open_hold_images=F("open_hold_images") + quote.n,
    )
    if not held:
        raise InsufficientCredit(
            f"This request needs {micros_to_usd(quote.estimate_micros)} USD; "
            f"{micros_to_usd(max(wallet.available_micros, 0))} USD is available."
        )
    return LedgerEntry.objects.create(
        tenant=tenant,
        kind=Kind.HOLD,
        reference=reference,
        amount_micros=quote.estimate_micros,
        api_key=api_key,
        price_id=quote.price_id,
        model_id=quote.model_id,
        quality=quote.quality,
        size=quote.size,
        images=quote.n,
        unit_cost_micros=quote.unit_cost_micros,
        unit_price_micros=quote.unit_price_micros,
    )


def _settle(
    hold: LedgerEntry, *, kind: str, amount_micros: int, images: int, cost_micros: int, note: str
) -> LedgerEntry:
    Wallet.objects.filter(tenant_id=hold.tenant_id).update(
        balance_micros=F("balance_micros") - (amount_micros if kind == Kind.CAPTURE else 0),
        held_micros=F("held_micros") - hold.amount_micros,
        open_holds=F("open_holds") - 1,
        open_hold_images=F("open_hold_images") - hold.images,
    )
    return LedgerEntry.objects.create(
        tenant_id=hold.tenant_id,
        kind=kind,
        reference=hold.reference,
        amount_micros=amount_micros,
        api_key_id=hold.api_key_id,
        price_id=hold.price_id,
        model_id=hold.model_id,
        quality=hold.quality,
        size=hold.size,
        images=images,
        unit_cost_micros=hold.unit_cost_micros,
        unit_price_micros=hold.unit_price_micros,
        cost_micros=cost_micros,
        note=note,
    )


def _hold_to_settle(hold: LedgerEntry | None) -> LedgerEntry | None:
    """The hold, with its tenant's wallet locked; None when there is none or it is already settled."""
    if hold is None:
        return None
    _wallet_locked(hold.tenant)
    return None if ledger_settlements(hold.reference).exists() else hold


def _hold_get(reference: str) -> LedgerEntry | None:
    return LedgerEntry.objects.select_related("tenant").filter(reference=reference, kind=Kind.HOLD).first()


def billing_capture(
    *,
    reference: str,
    images: int,
    amount_micros: int | None = None,
    upstream_cost_micros: int | None = None,
) -> LedgerEntry | None:
    """Charge for the images delivered (or an explicit amount) and release the rest of the hold.

    Never charges more than was held: the hold is what the tenant agreed to. `images` above the requested n
    (some upstreams return extra) are not charged. Returns None when the hold was already settled.
    """
    with transaction.atomic():
        found = _hold_get(reference)
        if found is None:
            raise HoldNotFound(f"No hold for reference '{reference}'.")
        hold = _hold_to_settle(found)
        if hold is None:
            return None
        if images <= 0 and not amount_micros:
            return _settle(
                hold,
                kind=Kind.RELEASE,
                amount_micros=hold.amount_micros,
                images=0,
                cost_micros=upstream_cost_micros or 0,
                note="nothing delivered",
            )
        images = min(max(images, 0), hold.images)
        charge = images * hold.unit_price_micros if amount_micros is None else amount_micros
        charge = min(max(charge, 0), hold.amount_micros)
        cost = images * hold.unit_cost_micros if upstream_cost_micros is None else upstream_cost_micros
        return _settle(
            hold, kind=Kind.CAPTURE, amount_micros=charge, images=images, cost_micros=cost, note=""
        )


def billing_release(*, reference: str, upstream_cost_micros: int = 0, reason: str = "") -> LedgerEntry | None:
    """Return the whole hold to the tenant, recording any upstream cost we bore anyway. Returns None when there
    is no hold or it was already settled."""
    with transaction.atomic():
        hold = _hold_to_settle(_hold_get(reference))
        if hold is None:
            return None
        return _settle(
            hold,
            kind=Kind.RELEASE,
            amount_micros=hold.amount_micros,
            images=0,
            cost_micros=upstream_cost_micros,
            note=reason[:500],
        )


# --- Statements -----------------------------------------------------------------------------------------


def statement_close(*, tenant: Tenant, period_start: date) -> Statement:
    """Close one calendar month for one tenant. Idempotent: the month's statement is created once."""
    period_start = period_start.replace(day=1)
    existing = Statement.objects.filter(tenant=tenant, period_start=period_start).first()
    if existing is not None:
        return existing
    start = as_utc_start(period_start)
    end = next_month_start(start)
    lines = list(statement_line_totals(tenant_id=tenant.pk, start=start, end=end))
    try:
        with transaction.atomic():
            statement = Statement.objects.create(
                tenant=tenant,
                period_start=period_start,
                period_end=end.date(),
                images=sum(line["images"] for line in lines),
                charges_micros=sum(line["amount_micros"] for line in lines),
                credits_micros=tenant_credits_between(tenant_id=tenant.pk, start=start, end=end),
                closing_balance_micros=tenant_balance_at(tenant_id=tenant.pk, at=end),
            )
            StatementLine.objects.bulk_create(StatementLine(statement=statement, **line) for line in lines)
    except IntegrityError:
        return Statement.objects.get(tenant=tenant, period_start=period_start)
    return statement


def statements_close_previous_month(*, now: datetime | None = None) -> int:
    """Close last month for every tenant that existed then. Returns how many statements were created."""
    now = now or timezone.now()
    this_month = month_start(now)
    previous = (this_month - timedelta(days=1)).date().replace(day=1)
    created = 0
    for tenant in Tenant.objects.filter(created_at__lt=this_month).order_by("pk"):
        if not Statement.objects.filter(tenant=tenant, period_start=previous).exists():
            statement_close(tenant=tenant, period_start=previous)
            created += 1
    logger.info("billing.statements_closed", period=f"{previous:%Y-%m}", created=created)
    return created


def billing_account_open(
    *, tenant: Tenant, plan: Plan | None, opening_credit_micros: int, actor: Actor = SYSTEM
) -> Wallet:
    """Billing setup for a new tenant: wallet, plan, and the opening credit through the ledger."""
    with transaction.atomic():
        wallet_get_or_create(tenant=tenant)
        if plan is not None:
            plan_assign(tenant=tenant, plan=plan, actor=actor)
        if opening_credit_micros:
            wallet_grant(
                tenant=tenant,
                amount_micros=opening_credit_micros,
                reference=f"opening_{tenant.slug}",
                actor=actor,
                note="opening credit",
            )
    return Wallet.objects.get(tenant=tenant)
