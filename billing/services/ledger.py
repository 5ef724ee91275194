"""The ledger's generation flow: hold an estimate before forwarding (`billing_reserve`), then settle it once by
charging what was delivered (`billing_capture`) or returning it (`billing_release`)."""

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import ApiKey, Tenant
from billing.models import LedgerEntry, Wallet
from billing.money import micros_to_usd
from billing.selectors import ledger_settlements, tenant_limits
from billing.services.prices import Quote
from billing.services.quotas import QuotaExceeded, quota_check_locked
from billing.services.wallets import ledger_entry_retried, wallet_if_available, wallet_lock
from project import errors

Kind = LedgerEntry.Kind


class InsufficientCredit(QuotaExceeded, errors.PaymentRequired):
    code = "insufficient_credit"
    message = "Not enough credit for this request. Top up your balance or ask for a credit limit."


class HoldNotFound(Exception):
    """A capture for a reference that was never reserved: a bug in the caller, never a free image."""


def billing_reserve(*, tenant: Tenant, api_key: ApiKey | None, reference: str, quote: Quote) -> LedgerEntry:
    """Check the quotas and hold the estimate. Must run inside the caller's `transaction.atomic()` so the hold
    commits or rolls back with the caller's own rows. Idempotent per reference."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("billing_reserve must be called inside transaction.atomic()")
    wallet = wallet_lock(tenant=tenant)
    existing = ledger_entry_retried(tenant=tenant, reference=reference, kind=Kind.HOLD)
    if existing is not None:
        return existing
    quota_check_locked(
        limits=tenant_limits(tenant=tenant, api_key=api_key),
        wallet=wallet,
        api_key=api_key,
        quote=quote,
        now=timezone.now(),
    )
    held = wallet_if_available(wallet=wallet, amount_micros=quote.estimate_micros).update(
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
    wallet_lock(tenant=hold.tenant)
    return None if ledger_settlements(hold.reference).exists() else hold


def _hold_get(reference: str) -> LedgerEntry | None:
    return LedgerEntry.objects.select_related("tenant").filter(reference=reference, kind=Kind.HOLD).first()


def billing_capture(
    *,
    reference: str,
    images: int,
    amount_micros: int | None = None,
    upstream_cost_micros: int | None = None,
    note: str = "",
) -> LedgerEntry | None:
    """Charge for the images delivered (or an explicit amount) and release the rest of the hold.

    Never charges more than was held: the hold is what the tenant agreed to. `images` above the requested n
    (some upstreams return extra) are not charged. `images=0` with an `amount_micros` charges for work that
    delivered nothing (a generation canceled while running); statements show such charges on their own line.
    Returns None when the hold was already settled.
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
            hold, kind=Kind.CAPTURE, amount_micros=charge, images=images, cost_micros=cost, note=note[:500]
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
