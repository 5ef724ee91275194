"""Wallets: opening a tenant's billing account, grants, staff adjustments and credit limits.

Also the wallet lock: every money movement of a tenant (here and in `billing.services.ledger`) first locks the
tenant's wallet row, so movements of one tenant queue instead of racing.
"""

import uuid

from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet

from accounts.models import Tenant
from accounts.services import SYSTEM, Actor, audit_record
from billing.models import LedgerEntry, Plan, Wallet
from billing.money import micros_to_usd
from billing.services.alerts import wallet_alerts_rearm
from billing.services.plans import plan_assign
from project import errors

Kind = LedgerEntry.Kind


class ReferenceTaken(Exception):
    """The reference already belongs to another tenant's ledger row."""


class InvalidWalletAmount(errors.InvalidRequest):
    code = "invalid_amount"


class AdjustmentExceedsAvailable(errors.Conflict):
    code = "adjustment_exceeds_available"


def wallet_get_or_create(*, tenant: Tenant) -> Wallet:
    wallet = Wallet.objects.filter(tenant=tenant).first()
    if wallet is not None:
        return wallet
    try:
        with transaction.atomic():
            return Wallet.objects.create(tenant=tenant)
    except IntegrityError:
        return Wallet.objects.get(tenant=tenant)


def wallet_lock(*, tenant: Tenant) -> Wallet:
    """Lock the tenant's wallet row for the rest of the transaction; every money movement of a tenant queues here."""
    wallet_get_or_create(tenant=tenant)
    return Wallet.objects.select_for_update().get(tenant=tenant)


def wallet_if_available(*, wallet: Wallet, amount_micros: int) -> QuerySet[Wallet]:
    """The wallet's row as a queryset that is empty unless `amount_micros` is available, for a conditional
    `UPDATE`: it changes one row (money was there) or none (refuse)."""
    return (
        Wallet.objects.filter(pk=wallet.pk)
        .alias(available=F("balance_micros") - F("held_micros") + F("credit_limit_micros"))
        .filter(available__gte=amount_micros)
    )


def ledger_entry_retried(*, tenant: Tenant, reference: str, kind: str) -> LedgerEntry | None:
    """The movement already recorded under this reference and kind (this call is a retry), or None.

    The caller holds the wallet lock. A reference is one tenant's: reusing another tenant's is refused rather
    than returning their row."""
    existing = LedgerEntry.objects.filter(reference=reference, kind=kind).first()
    if existing is not None and existing.tenant_id != tenant.pk:
        raise ReferenceTaken(f"{kind.capitalize()} reference '{reference}' belongs to another tenant.")
    return existing


def wallet_grant(
    *, tenant: Tenant, amount_micros: int, reference: str, actor: Actor, note: str = ""
) -> LedgerEntry:
    """Top up. Idempotent per reference: granting the same reference twice credits once."""
    if amount_micros <= 0:
        raise InvalidWalletAmount("A grant must be a positive amount.", param="amount")
    with transaction.atomic():
        wallet_lock(tenant=tenant)
        existing = ledger_entry_retried(tenant=tenant, reference=reference, kind=Kind.GRANT)
        if existing is not None:
            return existing
        Wallet.objects.filter(tenant=tenant).update(balance_micros=F("balance_micros") + amount_micros)
        wallet_alerts_rearm(tenant=tenant)
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
        wallet = wallet_lock(tenant=tenant)
        existing = ledger_entry_retried(tenant=tenant, reference=reference, kind=Kind.ADJUST)
        if existing is not None:
            return existing
        if not wallet_if_available(wallet=wallet, amount_micros=-amount_micros).update(
            balance_micros=F("balance_micros") + amount_micros
        ):
            raise AdjustmentExceedsAvailable(
                f"Debiting {micros_to_usd(-amount_micros)} USD would exceed the available "
                f"{micros_to_usd(wallet.available_micros)} USD.",
                param="amount",
            )
        wallet_alerts_rearm(tenant=tenant)
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
        wallet = wallet_lock(tenant=tenant)
        lowered_by = wallet.credit_limit_micros - credit_limit_micros
        if not wallet_if_available(wallet=wallet, amount_micros=lowered_by).update(
            credit_limit_micros=credit_limit_micros
        ):
            raise AdjustmentExceedsAvailable(
                "The wallet already uses more credit than that.", param="credit_limit"
            )
        wallet_alerts_rearm(tenant=tenant)
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
